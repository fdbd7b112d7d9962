"""Reading a local model file's metadata and tables, every size and type checked first."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from sonode.errors import ModelFileError
from sonode.model.config import SpanTiming
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

    raw = meta.get("config")
    types = {
        f: (int if f.endswith(("samples", "rate", "modes")) else float)
        for f in LocalConfig.__dataclass_fields__
    }
    if not isinstance(raw, dict) or set(raw) != set(types):
        raise ModelFileError(
            f"{path}: the local model's configuration is missing or incomplete; refit"
        )
    for name, kind in types.items():
        value = raw[name]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or (kind is int and not isinstance(value, int)) or not math.isfinite(value):
            raise ModelFileError(f"{path}: the local configuration's {name} is invalid; refit")
    limits = {
        "sample_rate": (8000, 192000),
        "hop_samples": (1, MAX_HOP_SAMPLES),
        "n_samples": (1, int(MAX_RENDER_S * raw["sample_rate"])),
        "continuation_samples": (0, raw["n_samples"]),
        "tail_modes": (0, MAX_LP_ORDER),
        "gain": (1e-300, math.inf),
        "continuation_switch_s": (0.0, MAX_RENDER_S),
    }
    for name, (low, high) in limits.items():
        if not low <= raw[name] <= high:
            raise ModelFileError(
                f"{path}: the local configuration's {name} = {raw[name]} is "
                f"outside {low}..{high}; refit"
            )
    return LocalConfig(**{n: types[n](raw[n]) for n in types})


def read_packed_tables(path, config: LocalConfig, blob: torch.Tensor, meta: dict):
    """Decode a version-4 file's compact tables (`sonode.model.local_codec`): ((first, length,
    freq_hz, amp_re, amp_im) as tensors, (freq_step_hz, state_step)). Sizes and steps are checked
    before anything is decompressed, and no more is decompressed than they declare."""
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
