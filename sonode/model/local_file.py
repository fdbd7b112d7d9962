"""Reading a local model file's metadata and tables, every size and type checked first."""

from __future__ import annotations

import json
import lzma
import math
from dataclasses import dataclass

import numpy as np
import torch

from sonode.errors import ModelFileError
from sonode.model.config import MAX_TEXTURE, SpanTiming, config_fields
from sonode.model.layout import SegmentLayout


@dataclass(frozen=True)
class LocalConfig(SpanTiming):
    """The local model's structure (saved as plain metadata)."""

    sample_rate: int  # Hz of the fitted clip
    n_samples: int  # samples of the fitted span
    hop_samples: int  # samples between nodes
    gain: float  # x_file = gain · x_normalised + offset
    offset: float
    continuation_samples: int = 0
    tail_modes: int = 0
    continuation_switch_s: float = 0.0
    continuation_texture: float = 0.0  # as `ModelConfig`'s: the amplitude `--texture auto` draws

    @property
    def n_nodes(self) -> int:
        """Nodes 0..n_nodes−1 at samples f·hop; the last at or after the last sample."""
        return max(2, math.ceil((self.n_samples - 1) / self.hop_samples) + 1)

    @property
    def layout(self) -> SegmentLayout:
        """The intervals between nodes as a segment layout (progress counts intervals)."""
        return SegmentLayout(self.sample_rate, self.n_samples, self.hop_samples, 0)


def table_problem(config: LocalConfig, tensors: dict) -> str | None:
    """What is wrong with a file's track tables, or None."""
    need = ("track_first", "track_length", "freq_hz", "amp_re", "amp_im")
    if any(n not in tensors or tensors[n].ndim != 1 for n in need):
        return "a track table is missing or not one-dimensional"
    first, length = tensors["track_first"].to(torch.int64), tensors["track_length"].to(torch.int64)
    n_entries = tensors["freq_hz"].numel()
    if first.numel() != length.numel() or any(tensors[n].numel() != n_entries for n in need[3:]):
        return "table lengths differ"
    if bool((length < 1).any()) or int(length.sum()) != n_entries:
        return "track lengths do not add up to the node entries"
    if bool((first < 0).any()) or bool((first + length > config.n_nodes).any()):
        return "a track lies outside the nodes"
    return None


def local_config_from_meta(path, meta: dict) -> LocalConfig:
    """The configuration in a local model file's metadata, types and sizes checked first."""
    from sonode.limits import MAX_HOP_SAMPLES, MAX_LP_ORDER, MAX_RENDER_S

    types = {
        f: (int if f.endswith(("samples", "rate", "modes")) else float)
        for f in LocalConfig.__dataclass_fields__
    }

    def bad(why: str) -> ModelFileError:
        return ModelFileError(f"{path}: the local model's configuration is invalid ({why}); refit")

    raw = config_fields(path, meta.get("config"), LocalConfig, types, bad)
    limits = {
        "sample_rate": (8000, 192000),
        "hop_samples": (1, MAX_HOP_SAMPLES),
        "n_samples": (1, int(MAX_RENDER_S * raw["sample_rate"])),
        "continuation_samples": (0, raw["n_samples"]),
        "tail_modes": (0, MAX_LP_ORDER),
        "gain": (1e-300, math.inf),
        "continuation_switch_s": (0.0, MAX_RENDER_S),
        "continuation_texture": (0.0, MAX_TEXTURE),
    }
    for name, (low, high) in limits.items():
        if not low <= raw[name] <= high:
            raise ModelFileError(
                f"{path}: the local configuration's {name} = {raw[name]} is "
                f"outside {low}..{high}; refit"
            )
    return LocalConfig(**raw)


def read_packed_tables(path, config: LocalConfig, blob: torch.Tensor, meta: dict):
    """Decode a version-4 or 5 file's compact tables (`sonode.model.local_codec`): ((first,
    length, freq_hz, amp_re, amp_im, shifts, predict) as tensors, (freq_step_hz, state_step)).
    Sizes and steps are checked before anything is decompressed, and no more is decompressed
    than they declare."""
    from sonode.model.local_codec import CODECS, decode

    tables = meta.get("tables")
    if not isinstance(tables, dict) or tables.get("codec") not in CODECS:
        raise ModelFileError(
            f"{path}: the local model's compact tables are of an unknown kind; refit"
        )
    counts = [tables.get(n) for n in ("n_tracks", "n_entries")]
    steps = [tables.get(n) for n in ("freq_step_hz", "state_step")]
    # at most one entry per sample and node: far above any fit's (0.5 numbers per sample)
    most = config.n_nodes * max(1, config.hop_samples)
    if (
        blob.dtype != torch.uint8
        or blob.ndim != 1
        or not all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
        or not 0 <= counts[0] <= counts[1] <= most
        or not all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in steps)
    ):
        raise ModelFileError(f"{path}: the local model's compact tables are damaged; refit")
    try:
        decoded = decode(
            blob.numpy().tobytes(),
            *counts,
            config.hop_samples,
            config.sample_rate,
            *steps,
            codec=tables["codec"],
        )
    except ValueError as err:
        raise ModelFileError(
            f"{path}: the local model's compact tables are damaged ({err}); refit"
        ) from None
    as_tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in decoded]
    return as_tensors, (steps[0], steps[1])


# version 5 (compact tables, `sonode.model.local`): the continuation's float32 tensors and the fit
# report are stored LZMA-compressed, as byte planes and as JSON: they were a tenth of a 3 s
# excerpt's file, the report alone ~2.7 kB of plain JSON
PACKED_CONTINUATION, PACKED_INFO = "continuation_packed", "info_packed"
MAX_PACKED_NUMBERS = 1 << 22  # continuation numbers a file may declare (a 4096-mode ODE has ~20 K)
MAX_INFO_BYTES = 1 << 24  # a fit report's JSON a file may declare (one of 10 K epochs is ~1 MB)


def pack_extras(tensors: dict, info: dict) -> tuple[dict, dict]:
    """(tensors, meta entries) of version 5: ``tensors``' float32 continuation tensors (names
    starting "tail_" or "continuation") and ``info`` (JSON-able) each as one LZMA-compressed uint8
    tensor, their names, shapes and sizes in the metadata."""
    names = [n for n, t in tensors.items() if n.startswith(_PACKED) and t.dtype == torch.float32]
    out = {n: t for n, t in tensors.items() if n not in names}
    numbers = np.concatenate([tensors[n].numpy().reshape(-1) for n in names] or [np.zeros(0)])
    planes = numbers.astype("<f4").view(np.uint8).reshape(-1, 4).T
    out[PACKED_CONTINUATION] = _bytes_tensor(np.ascontiguousarray(planes).tobytes())
    text = json.dumps(info, sort_keys=True, allow_nan=False).encode()
    out[PACKED_INFO] = _bytes_tensor(text)
    meta = {
        "packed": {
            "continuation": [[n, list(tensors[n].shape)] for n in names],
            "info_bytes": len(text),
        }
    }
    return out, meta


def unpack_extras(path, tensors: dict, meta: dict) -> tuple[dict, dict]:
    """`pack_extras` undone: (tensors with the continuation's, info). Sizes, names and shapes are
    checked before anything is decompressed, and no more is decompressed than they declare."""
    damaged = f"{path}: the local model's packed continuation or report is damaged; refit"
    packed = meta.get("packed")
    listed = packed.get("continuation") if isinstance(packed, dict) else None
    info_bytes = packed.get("info_bytes") if isinstance(packed, dict) else None
    if (
        not isinstance(listed, list)
        or not all(
            isinstance(e, list)
            and len(e) == 2
            and isinstance(e[0], str)
            and e[0].startswith(_PACKED)
            and e[0] not in tensors
            and isinstance(e[1], list)
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in e[1])
            for e in listed
        )
        or len({e[0] for e in listed}) != len(listed)
        or not isinstance(info_bytes, int)
        or isinstance(info_bytes, bool)
        or not 0 <= info_bytes <= MAX_INFO_BYTES
        or any(
            n not in tensors or tensors[n].dtype != torch.uint8 or tensors[n].ndim != 1
            for n in (PACKED_CONTINUATION, PACKED_INFO)
        )
    ):
        raise ModelFileError(damaged)
    sizes = [math.prod(shape) for _, shape in listed]
    if sum(sizes) > MAX_PACKED_NUMBERS:
        raise ModelFileError(damaged)
    out = {n: t for n, t in tensors.items() if n not in (PACKED_CONTINUATION, PACKED_INFO)}
    try:
        raw = _decompress(tensors[PACKED_CONTINUATION], 4 * sum(sizes))
        text = _decompress(tensors[PACKED_INFO], info_bytes)
        info = json.loads(text.decode(), parse_constant=_refuse_constant)
    except ValueError:  # also a JSON or UTF-8 error
        raise ModelFileError(damaged) from None
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(4, -1).T
    numbers = np.ascontiguousarray(planes).view("<f4").reshape(-1)
    bounds = np.cumsum([0, *sizes])
    for (name, shape), a, b in zip(listed, bounds[:-1], bounds[1:], strict=True):
        out[name] = torch.from_numpy(numbers[a:b].copy().reshape(shape))
    return out, info if isinstance(info, dict) else {}


_PACKED = ("tail_", "continuation")


def _bytes_tensor(data: bytes) -> torch.Tensor:
    blob = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8)


def _decompress(blob: torch.Tensor, size: int) -> bytes:
    """Exactly ``size`` bytes from an LZMA stream, never more. Raises ValueError otherwise."""
    decompressor = lzma.LZMADecompressor()
    try:
        # one byte more than declared, so that an empty stream reaches its end and a longer one
        # is caught without decompressing it
        raw = decompressor.decompress(blob.numpy().tobytes(), max_length=size + 1)
    except lzma.LZMAError as err:
        raise ValueError(str(err)) from None
    if len(raw) != size or not decompressor.eof:
        raise ValueError("not the declared size")
    return raw


def _refuse_constant(name: str):
    raise ValueError(f"{name} in a fit report")
