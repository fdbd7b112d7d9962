"""The Python API: fit a clip, then render, upsample or extrapolate the fitted signal.

    >>> import sonode
    >>> fitted = sonode.fit("data/decaying_steelguitar_C4.wav", rate=16000, max_time_s=30)
    >>> hi = fitted.upsample(48000)            # numpy (n,), file amplitude
    >>> more = fitted.extrapolate(0.25)        # the 0.25 s after the clip
    >>> fitted.save("outputs/guitar.sonode"); again = sonode.load("outputs/guitar.sonode")

The CLI (`sonode.cli`) is a thin shell over these functions.
"""

from __future__ import annotations

import os
import platform
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from sonode import __version__
from sonode.audio_io import Clip, read_clip
from sonode.model import EpochRecord, FitOptions, SonodeModel, fit_samples
from sonode.model.checkpoint import CheckpointPlan
from sonode.render import Rendering, extrapolate, render

FIT_OPTION_NAMES = tuple(f.name for f in fields(FitOptions))


class Fitted:
    """A fitted model with what is known about it (source, fit report); renders numpy audio.

    Attributes:
        model: the `SonodeModel`.
        info: plain metadata: source file, rate, span, fit report summary (saved with the model).
    """

    def __init__(self, model: SonodeModel, info: dict[str, Any]):
        self.model = model
        self.info = info

    @property
    def sample_rate(self) -> int:
        """Hz of the fitted clip."""
        return self.model.config.sample_rate

    @property
    def duration_s(self) -> float:
        """Length of the fitted span in seconds."""
        return self.model.config.n_samples / self.model.config.sample_rate

    def render(self, rate: int | None = None, start_s: float = 0.0, end_s: float | None = None,
               progress: Callable[[int, int], None] | None = None) -> Rendering:
        """The signal on [start_s, end_s) at ``rate`` (see `sonode.render.render`)."""
        return render(self.model, rate=rate, start_s=start_s, end_s=end_s, progress=progress)

    def upsample(self, rate: int) -> np.ndarray:
        """The whole fitted span at ``rate`` Hz: (round(duration_s·rate),) float64."""
        return self.render(rate=rate).samples

    def extrapolate(self, seconds: float, rate: int | None = None, with_context: bool = False) -> np.ndarray:
        """``seconds`` of continuation after the fitted span (see `sonode.render.extrapolate`)."""
        return extrapolate(self.model, seconds, rate=rate, with_context=with_context).samples

    def save_training_curve(self, path: str | os.PathLike, title: str | None = None) -> bool:
        """Write the loss/SNR-per-epoch PNG; False (nothing written) when no epoch was trained,
        e.g. ``steps=0`` or a target SNR the initial linear fit already reaches."""
        from sonode.plotting import save_fit_report_png

        if not self.info.get("history"):
            return False
        save_fit_report_png(path, self.info["history"], title=title)
        return True

    def save(self, path: str | os.PathLike) -> None:
        """Write the model file atomically (tensors + JSON metadata, loadable without code).

        Wall-clock figures are left out (they are in the fit report): the same clip, options,
        seed, step count and thread count then give a byte-identical model file.
        """
        self.model.save(path, _without_timings(self.info))


TIMING_KEYS = ("wall_time_s", "seconds_per_epoch", "elapsed_s")


def _without_timings(value: Any) -> Any:
    """A copy of nested dicts/lists without the keys in TIMING_KEYS."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def load(path: str | os.PathLike) -> Fitted:
    """Read a model file written by `Fitted.save` (never executes code from the file)."""
    model, info = SonodeModel.load(path)
    return Fitted(model, info)


def fit(clip: str | os.PathLike | Clip, *, rate: int | None = None, start_s: float = 0.0,
        duration_s: float | None = None, channel: str | int = "mix", threads: int | None = None,
        on_epoch: Callable[[EpochRecord, float], None] | None = None,
        should_stop: Callable[[], bool] | None = None, checkpoint_path: str | os.PathLike | None = None,
        checkpoint_every_s: float = 30.0, resume: bool = False, **options: Any) -> Fitted:
    """Fit a neural ODE decoder to an audio clip.

    Args:
        clip: a file path (WAV/FLAC/OGG) or a `Clip` already read.
        rate: resample to this rate in Hz before fitting (default: the file's rate).
        start_s, duration_s, channel: which part of the file (see `sonode.audio_io.read_clip`).
        threads: torch intra-op threads (default: torch's choice).
        on_epoch, should_stop: training callbacks (see `fit_samples`).
        checkpoint_path: write a resumable training checkpoint here (default: none), every
            ``checkpoint_every_s`` seconds of wall time (0: none) and when ``should_stop`` ends the
            fit. It stays until you delete it (`sonode.model.checkpoint.remove_checkpoint`; the CLI
            does so once the model is saved).
        resume: continue the fit saved in ``checkpoint_path`` (same clip and options; only
            max_time_s, steps and target_snr_db may differ). With ``steps`` as the stopping rule the
            result is bit-identical to an uninterrupted fit; ``max_time_s`` counts the time before
            the interruption too.
        **options: fields of `FitOptions` (max_time_s, steps, target_snr_db, latent_dim, seed, ...).

    Returns:
        A `Fitted` model whose ``info["fit"]`` holds the fit report (without the per-epoch history,
        which is in ``info["history"]``).

    Raises:
        sonode.errors.AudioInputError: the clip cannot be used.
        ValueError: an option is invalid (the message names it).
        sonode.model.checkpoint.CheckpointError: ``resume`` and the checkpoint is missing, damaged,
            or belongs to another clip or other options.
    """
    unknown = sorted(set(options) - set(FIT_OPTION_NAMES))
    if unknown:
        raise ValueError(f"unknown fit option(s) {unknown}; valid: {', '.join(FIT_OPTION_NAMES)}")
    fit_options = FitOptions(**options)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path=, the checkpoint to continue from")
    plan = None
    if checkpoint_path is not None:
        plan = CheckpointPlan(Path(checkpoint_path), every_s=checkpoint_every_s, resume=resume,
                              source=str(clip.source_path if isinstance(clip, Clip) else clip))
    if threads is not None:
        torch.set_num_threads(int(threads))
    if not isinstance(clip, Clip):
        clip = read_clip(clip, channel=channel, start_s=start_s, duration_s=duration_s, rate=rate)
    elif rate is not None and rate != clip.sample_rate:
        raise ValueError("rate= only applies when fit() reads the file; resample the Clip first")
    model, report = fit_samples(clip.samples, clip.sample_rate, fit_options, on_epoch=on_epoch,
                                should_stop=should_stop, checkpoint=plan)
    summary = report.as_dict()
    history = summary.pop("history")
    info = {
        "source": {"path": str(clip.source_path), "name": Path(clip.source_path).name,
                   "source_rate": clip.source_rate, "channels": clip.source_channels,
                   "channel": clip.channel, "start_s": clip.start_s},
        "sample_rate": clip.sample_rate,
        "duration_s": clip.duration_s,
        "fit": summary,
        "history": history,
        "versions": {"sonode": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "threads": torch.get_num_threads(),
    }
    return Fitted(model, info)
