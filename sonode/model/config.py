"""A fitted model's structure: `ModelConfig`, and its validation when read back from a file.

Kept apart from the module (`sonode.model.decoder`) because a file's metadata is checked here, types
and sizes, before any tensor is allocated."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sonode.errors import ModelFileError
from sonode.model.layout import SegmentLayout

MODEL_KIND = "sonode-decoder"
MODEL_VERSION = 2  # 2: modal field γ(e) ⊙ z (version 1's general MLP field is not read)


class SpanTiming:
    """Where a fitted span and its continuation lie in model time: shared by the configurations
    of both variants (`ModelConfig`, `sonode.model.local_file.LocalConfig`), which declare
    ``sample_rate`` (Hz), ``n_samples`` and ``continuation_samples``."""

    sample_rate: int
    n_samples: int
    continuation_samples: int

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def continuation_start_s(self) -> float:
        """Model time where the continuation state lives: continuation_samples before the end."""
        return (self.n_samples - self.continuation_samples) / self.sample_rate


@dataclass(frozen=True)
class ModelConfig(SpanTiming):
    """Everything needed to rebuild a model's structure (saved as plain metadata)."""

    sample_rate: int  # Hz of the fitted clip
    n_samples: int  # samples of the fitted span
    hop_samples: int
    overlap_samples: int
    n_modes: int  # K; latent dimension d = 2K
    hidden: int
    layers: int
    gain: float  # x_file = gain · x_normalised + offset
    offset: float
    continuation_samples: int = (
        0  # window of the continuation state (0: the last segment continues)
    )
    tail_modes: int = 0  # modes of the continuation's own linear ODE, identified on the clip's end
    # seconds after the span's end at which the continuation's late modes take over (0: from the start)
    continuation_switch_s: float = 0.0
    # the texture's amplitude `--texture auto` draws (`sonode.model.texture_choice`: 1 where the
    # fit's held-back end chose it, 0 the mean alone; files written before it: 0)
    continuation_texture: float = 0.0

    @property
    def latent_dim(self) -> int:
        return 2 * self.n_modes

    @property
    def layout(self) -> SegmentLayout:
        return SegmentLayout(
            self.sample_rate, self.n_samples, self.hop_samples, self.overlap_samples
        )


def config_from_meta(path, meta: dict[str, Any]) -> ModelConfig:
    """The configuration in a file's metadata, its types and sizes checked before anything is built
    (a crafted file could otherwise ask for gigabytes: n_modes=1e6, layers=1e7)."""
    from sonode.limits import (
        MAX_HIDDEN,
        MAX_HOP_SAMPLES,
        MAX_LATENT_DIM,
        MAX_LAYERS,
        MAX_LP_ORDER,
        MAX_RENDER_S,
        check_memory,
    )

    def bad(why: str) -> ModelFileError:
        return ModelFileError(
            f"{path}: the model configuration is invalid ({why}); the file is damaged or not a "
            "sonode model — refit the clip"
        )

    raw = meta.get("config") if isinstance(meta, dict) else None
    values = config_fields(path, raw, ModelConfig, _CONFIG_TYPES, bad)
    limits = {
        "sample_rate": (8000, 192000),
        "n_samples": (1, int(MAX_RENDER_S * values["sample_rate"])),
        "hop_samples": (1, MAX_HOP_SAMPLES),
        "overlap_samples": (0, values["hop_samples"]),
        "n_modes": (1, MAX_LATENT_DIM // 2),
        "hidden": (1, MAX_HIDDEN),
        "layers": (1, MAX_LAYERS),
        "continuation_samples": (0, values["n_samples"]),
        "tail_modes": (0, MAX_LP_ORDER),
        "gain": (1e-300, math.inf),
        "offset": (-math.inf, math.inf),
        "continuation_switch_s": (0.0, MAX_RENDER_S),
        "continuation_texture": (0.0, MAX_TEXTURE),
    }
    for field, (low, high) in limits.items():
        if not low <= values[field] <= high:
            raise bad(f"{field} = {values[field]} is outside {low}..{high}")
    config = ModelConfig(**values)
    n_parameters = (
        (config.layout.n_segments + 1) * config.latent_dim
        + config.layers * config.hidden**2
        + 4 * config.hidden * config.latent_dim
        + 8 * config.tail_modes
    )
    check_memory(
        f"the model in {path} ({n_parameters} parameters)",
        32 * n_parameters,
        "it is not a model this machine can load",
    )
    return config


_CONFIG_TYPES = {
    "sample_rate": int,
    "n_samples": int,
    "hop_samples": int,
    "overlap_samples": int,
    "n_modes": int,
    "hidden": int,
    "layers": int,
    "gain": float,
    "offset": float,
    "continuation_samples": int,
    "tail_modes": int,
    "continuation_switch_s": float,
    "continuation_texture": float,
}
MAX_TEXTURE = 4.0  # the largest texture amplitude a file may store (the --texture option's range)


def config_fields(
    path, raw: Any, config: type, types: dict[str, type], bad: Callable[[str], Exception]
) -> dict[str, Any]:
    """The fields of a file's configuration ``raw`` for the dataclass ``config``, each an int or a
    finite float as ``types`` says: the check both model variants share (their value ranges are
    their own). The compatibility rules (docs/design.md, "Model files across versions"):

    - a field with a default in ``config`` may be absent (a file written before it existed): the
      default is the value that changes nothing, always 0;
    - a field this build does not know is ignored when it is 0 (a newer build's setting left at
      its "changes nothing" value: ignoring it renders what the newer build renders), and refused
      otherwise, in one line saying a newer sonode wrote the file.

    Raises:
        ModelFileError: a field this build does not know is set (a newer sonode's file).
        ``bad(why)``: not an object, a field missing, or a value of the wrong type.
    """
    if not isinstance(raw, dict):
        raise bad("no 'config' object")
    newer = {k: v for k, v in raw.items() if k not in types and not _changes_nothing(v)}
    if newer:
        from sonode._version import __version__

        settings = ", ".join(f"{k} = {str(v)[:40]}" for k, v in sorted(newer.items()))
        raise ModelFileError(
            f"{path} was written by a newer sonode: its configuration sets {settings}, which sonode "
            f"{__version__} does not know; upgrade sonode to load it, or refit the clip with this one"
        )
    defaults = {
        f.name: f.default
        for f in dataclasses.fields(config)
        if f.default is not dataclasses.MISSING
    }
    values = {}
    for field, type_ in types.items():
        if field not in raw and field not in defaults:
            raise bad(f"{field} is missing")
        value = raw.get(field, defaults.get(field))
        if type_ is int and not (isinstance(value, int) and not isinstance(value, bool)):
            raise bad(f"{field} must be an integer, got {type(value).__name__} {str(value)[:40]}")
        if type_ is float and not (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ):
            raise bad(
                f"{field} must be a finite number, got {type(value).__name__} {str(value)[:40]}"
            )
        values[field] = type_(value)
    return values


def _changes_nothing(value: Any) -> bool:
    """A configuration value an unknown field may hold and be ignored: 0 (or 0.0, false, null)."""
    return value is None or (isinstance(value, (int, float)) and value == 0)
