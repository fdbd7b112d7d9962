"""A versioned, code-free container for model files.

A model file is a torch zip archive holding only plain data: ::

    {"format": "sonode", "kind": str, "version": int, "meta_json": str, "tensors": {name: Tensor},
     "sha256": str}

It is loaded with ``torch.load(weights_only=True)``, whose unpickler only rebuilds tensors and
plain containers, so a file carrying a pickled object (which could run code when unpickled) is
refused, not executed. Metadata travels as a JSON string so that it can never hold objects. After
loading, the container is checked field by field (format, kind, version, tensor names, finiteness,
shapes, checksum) so that a foreign, outdated, damaged or tampered file is refused with one clear
:class:`~sonode.errors.ModelFileError` before any model code sees it.

The SHA-256 digest covers the metadata and every tensor's name, dtype, shape and bytes. torch does
not verify the zip checksums of tensor data, so without it a bit flipped in transit would load
silently as a wrong model. It is integrity, not trust: it detects damage, not malice, since whoever
edits a file can recompute it. What protects against a crafted file is that loading runs no code
and that every size in it is bounded before anything is built (`_check_archive` here, the
configuration's types and limits in `sonode.model.config`; see docs/security.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from sonode.errors import ModelFileError
from sonode.io.fileutil import atomic_write
from sonode.limits import MAX_MODEL_FILE_BYTES, MAX_MODEL_MEMBERS

FORMAT_NAME = "sonode"
_KEYS = ("format", "kind", "version", "meta_json", "tensors", "sha256")

#: schema entry per tensor: the expected shape, each dimension an int (exact), None (any) or a
#: str symbol that must take the same value everywhere it appears, e.g. {"A": ("k", "k"), "C": ("k",)}.
Schema = Mapping[str, tuple]


def save_model_file(
    path: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    *,
    kind: str,
    version: int,
) -> None:
    """Write a model file atomically; the bytes depend only on the arguments (deterministic).

    Args:
        path: destination (parent folders are created; an existing file is replaced whole).
        tensors: name -> tensor (any shape/dtype; stored detached, contiguous, on the CPU).
        meta: JSON-serialisable plain data (strict JSON: no NaN/inf floats).
        kind: what the file holds, e.g. "decoder"; load_model_file checks it.
        version: format version of that kind (int >= 1); load_model_file checks it.

    Raises:
        TypeError / ValueError: a tensor name or value, meta, kind or version is not as above, or a
            floating tensor has NaN/inf values (such a file would be refused on loading).
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an int >= 1, got {version!r}")
    stored = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"tensors must map str to torch.Tensor, got {name!r}: {type(tensor).__name__}"
            )
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            # load_model_file refuses such files, so writing one would only lose the previous file.
            raise ValueError(
                f"tensor {name!r} has NaN or infinite values; not saving a diverged model"
            )
        # clone(): a view would otherwise drag its whole base storage into the file.
        stored[name] = tensor.detach().to("cpu").contiguous().clone()
    meta_json = json.dumps(dict(meta), sort_keys=True, allow_nan=False)
    payload = {
        "format": FORMAT_NAME,
        "kind": kind,
        "version": version,
        "meta_json": meta_json,
        "tensors": stored,
        "sha256": _digest(meta_json, stored),
    }
    # Serialise to memory first: torch names the archive's root folder after the file, so saving
    # straight to atomic_write's random temp name would make identical models differ in bytes.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_write(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_model_file(
    path: str | os.PathLike,
    *,
    kind: str,
    supported_versions: Iterable[int],
    schema: Schema | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load and check a model file without running any code stored in it.

    Args:
        path: the model file.
        kind: the kind the caller expects (as given to save_model_file).
        supported_versions: versions of that kind the caller can read.
        schema: optional name -> expected shape (see :data:`Schema`); when given, the file must hold
            exactly these tensors with consistent shapes.

    Returns:
        (tensors, meta): name -> CPU tensor, and the metadata dict.

    Raises:
        ModelFileError: missing, not a model file, corrupt/truncated, unsafe (pickled objects),
            another kind, unsupported version, missing keys, non-tensor values, non-finite values,
            or shapes that do not match ``schema``. The message says what to do.
    """
    file = Path(path)
    supported = sorted(set(supported_versions))
    if not file.exists():
        raise ModelFileError(
            f"{file}: no such model file; check the path (models are made by `sonode fit`)"
        )
    if not file.is_file():
        raise ModelFileError(f"{file} is not a file; give the path of a .sonode model file")
    payload = _torch_load(file)
    tensors, meta = _check_container(file, payload, kind, supported)
    if schema is not None:
        _check_schema(file, tensors, schema)
    return tensors, meta


def _torch_load(file: Path) -> Any:
    refit = "refit the model with `sonode fit` or copy the file again"
    # Our files are always zip archives; refusing anything else up front keeps torch's legacy
    # (non-zip) loader, and its larger attack surface, out of reach.
    if not _is_zip(file):
        raise ModelFileError(
            f"{file} is not a sonode model file (not a torch zip archive, or truncated); {refit}"
        )
    _check_archive(file)
    try:
        return torch.load(file, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower() or "weights_only" in str(err).lower():
            raise ModelFileError(
                f"{file} contains pickled Python objects, not just tensors and plain data; it was refused "
                "because loading it could run code hidden in it. Only use model files made by sonode"
            ) from err
        raise ModelFileError(f"{file} is corrupt ({_first_line(err)}); {refit}") from err
    except Exception as err:  # noqa: BLE001 - torch's zip/unpickle errors have no common base class
        raise ModelFileError(
            f"{file} is corrupt or truncated ({_first_line(err)}); {refit}"
        ) from err


def _check_archive(file: Path) -> None:
    """Bound what loading can allocate before torch reads anything: the file's size, its number of
    members, and their decompressed sizes. torch writes members uncompressed (stored), so a member
    that is compressed, or declares more bytes than the file holds, is refused: that is how a zip
    bomb (a small file that inflates to gigabytes) would look."""
    size = file.stat().st_size
    if size > MAX_MODEL_FILE_BYTES:
        raise ModelFileError(
            f"{file} is {size} bytes, over the limit of {MAX_MODEL_FILE_BYTES} bytes for a model "
            "file; it is not a model sonode made"
        )
    try:
        with zipfile.ZipFile(file) as archive:
            members = archive.infolist()
    except Exception as err:  # noqa: BLE001 - zipfile raises several types on a damaged directory
        raise ModelFileError(
            f"{file} is corrupt or truncated ({_first_line(err)}); refit the model"
        ) from None
    if len(members) > MAX_MODEL_MEMBERS:
        raise ModelFileError(
            f"{file} has {len(members)} archive members, over the limit of {MAX_MODEL_MEMBERS}; "
            "it is not a model sonode made"
        )
    total = 0
    for m in members:
        if m.compress_type != zipfile.ZIP_STORED:
            raise ModelFileError(
                f"{file}: archive member {m.filename!r} is compressed, which sonode's model files "
                "never are (refused before decompressing: it could be a zip bomb); refit the model"
            )
        total += m.file_size
    if total > size:
        raise ModelFileError(
            f"{file}: its members declare {total} bytes but the file holds {size} (damaged or "
            "crafted; refused before reading); refit the model"
        )


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether a command's input is a model file rather than audio: a regular file that starts as
    a zip archive (every model file does, no audio format does). Only regular files are opened (a
    FIFO would block; the audio reader then says what the path is); never raises."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _is_zip(file: Path) -> bool:
    try:
        return zipfile.is_zipfile(file)
    except Exception:  # noqa: BLE001 - is_zipfile leaks BadZipFile etc. on odd end records (fuzz-found)
        return False


def _check_container(
    file: Path, payload: Any, kind: str, supported: list[int]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{file} is a torch file but not a sonode model file; give a file made by `sonode fit`"
        )
    missing = [k for k in _KEYS if k not in payload]
    if missing:
        raise ModelFileError(
            f"{file} is incomplete: missing {', '.join(missing)}; refit the model with `sonode fit`"
        )
    if payload["kind"] != kind:
        raise ModelFileError(
            f"{file} holds a {payload['kind']!r}, not a {kind!r}; give the right kind of file"
        )
    version = payload["version"]
    if isinstance(version, int) and not isinstance(version, bool) and version > max(supported):
        from sonode._version import __version__

        raise ModelFileError(
            f"{file} was written by a newer sonode: it has format version {version} of "
            f"{kind!r}, and sonode {__version__} reads version(s) "
            f"{', '.join(map(str, supported))}; upgrade sonode to load it, or refit the clip with "
            "this one"
        )
    if isinstance(version, bool) or not isinstance(version, int) or version not in supported:
        raise ModelFileError(
            f"{file} has format version {version!r} but this sonode reads version(s) "
            f"{', '.join(map(str, supported))}; refit the model or use the sonode version that made it"
        )
    try:
        meta = json.loads(payload["meta_json"]) if isinstance(payload["meta_json"], str) else None
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict):
        raise ModelFileError(
            f"{file}: its metadata is not a JSON object (corrupt file); refit the model"
        )
    tensors = payload["tensors"]
    if not isinstance(tensors, dict):
        raise ModelFileError(
            f"{file}: 'tensors' is a {type(tensors).__name__}, not a dict (corrupt file); refit"
        )
    for name, value in tensors.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise ModelFileError(
                f"{file}: entry {name!r} is a {type(value).__name__}, not a tensor (corrupt or tampered); refit"
            )
        if value.layout != torch.strided or value.is_quantized:
            # sonode writes plain dense tensors only; sparse/quantized ones would reach model code
            # that cannot handle them.
            raise ModelFileError(
                f"{file}: tensor {name!r} is not a plain dense tensor (tampered); refit"
            )
    if not isinstance(payload["sha256"], str) or payload["sha256"] != _digest(
        payload["meta_json"], tensors
    ):
        raise ModelFileError(
            f"{file} is damaged: its contents do not match the checksum stored in it (corrupted in "
            "copying or edited); copy it again or refit the model"
        )
    for name, value in tensors.items():
        if (value.is_floating_point() or value.is_complex()) and not bool(
            torch.isfinite(value).all()
        ):
            raise ModelFileError(
                f"{file}: tensor {name!r} has NaN or infinite values; refit the model"
            )
    return tensors, meta


def _digest(meta_json: str, tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the metadata and each tensor's name, dtype, shape and raw bytes (name order)."""
    h = hashlib.sha256(meta_json.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_schema(file: Path, tensors: dict[str, torch.Tensor], schema: Schema) -> None:
    names, expected = set(tensors), set(schema)
    if names != expected:
        parts = []
        if expected - names:
            parts.append(f"missing tensor(s) {', '.join(sorted(expected - names))}")
        if names - expected:
            parts.append(f"unexpected tensor(s) {', '.join(sorted(names - expected))}")
        raise ModelFileError(
            f"{file}: {'; '.join(parts)} (corrupt, tampered, or another model type); refit"
        )
    bound: dict[str, tuple[int, str]] = {}  # symbol -> (size, tensor that fixed it)
    for name, dims in schema.items():
        shape = tuple(tensors[name].shape)
        ok = len(shape) == len(dims)
        for size, dim in zip(shape, dims, strict=False) if ok else ():
            if isinstance(dim, str):
                if dim in bound and bound[dim][0] != size:
                    raise ModelFileError(
                        f"{file}: tensor {name!r} has shape {shape}, which gives {dim}={size}, but tensor "
                        f"{bound[dim][1]!r} gives {dim}={bound[dim][0]} (tampered or corrupt); refit"
                    )
                bound.setdefault(dim, (size, name))
            elif dim is not None and size != dim:
                ok = False
        if not ok:
            raise ModelFileError(
                f"{file}: tensor {name!r} has shape {shape}, expected {_show_dims(dims)} "
                "(tampered or corrupt); refit the model"
            )


def _show_dims(dims: tuple) -> str:
    items = ["any" if d is None else str(d) for d in dims]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__
