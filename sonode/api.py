"""The Python API: fit a clip, then render, upsample or extrapolate the fitted signal.

    >>> import sonode
    >>> fitted = sonode.fit("data/decaying_steelguitar_C4.wav", rate=16000, max_time_s=30)
    >>> hi = fitted.upsample(48000)            # numpy (n,), file amplitude
    >>> more = fitted.extrapolate(0.25)        # the 0.25 s after the clip
    >>> fitted.save("outputs/guitar.sonode"); again = sonode.load("outputs/guitar.sonode")

The CLI (`sonode.cli`) is a thin shell over these functions.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import resource
except ImportError:  # (Windows)
    resource = None

from sonode._version import __version__
from sonode.io.clip import Clip, read_clip
from sonode.io.model_info import (
    TIMING_KEYS as TIMING_KEYS,  # moved to sonode.io.model_info; importable here as before
    checked_info,
    without_timings,
)
from sonode.model import EpochRecord, FitOptions, FitReport, SonodeModel, fit_samples
from sonode.model.checkpoint import CheckpointPlan
from sonode.model.device import resolve_device
from sonode.model.fit_size import DEFAULT_RATE_HZ, estimated_peak_bytes, max_fit_samples
from sonode.model.init import TRAJECTORY_S
from sonode.tasks.render import Rendering, extrapolate, render
from sonode.tasks.upsample import model_energy_above_db

FIT_OPTION_NAMES = tuple(f.name for f in fields(FitOptions))


class Fitted:
    """A fitted model with what is known about it (source, fit report); renders numpy audio.

    Attributes:
        model: the `SonodeModel`.
        info: plain metadata: source file, rate, span, fit report summary (saved with the model).
        report: the fit report as a typed `FitReport` (read from ``info``).
    """

    def __init__(self, model: SonodeModel, info: dict[str, Any], clip: Clip | None = None):
        self.model = model
        self.info = info
        self._clip = clip  # the fitted samples, when fitted in this session (not saved)

    @property
    def report(self) -> FitReport:
        """The fit report as a typed object, read from ``info["fit"]`` and ``info["history"]`` (which
        stay as they are for old scripts). Figures a saved model file leaves out (wall-clock times)
        and figures that were not finite are nan.

        Raises:
            ValueError: ``info`` holds no fit report.
        """
        if not isinstance(self.info.get("fit"), dict):
            raise ValueError("this model carries no fit report (info has no 'fit' entry)")
        return FitReport.from_dict(self.info["fit"], self.info.get("history"))

    @property
    def sample_rate(self) -> int:
        """Hz of the fitted clip."""
        return self.model.config.sample_rate

    @property
    def duration_s(self) -> float:
        """Length of the fitted span in seconds."""
        return self.model.config.n_samples / self.model.config.sample_rate

    def render(
        self,
        rate: int | None = None,
        start_s: float = 0.0,
        end_s: float | None = None,
        progress: Callable[[int, int], None] | None = None,
        texture: float | str = 0.0,
        seed: int = 0,
        device: str = "cpu",
    ) -> Rendering:
        """The signal on [start_s, end_s) at ``rate`` (see `sonode.tasks.render.render`; past the
        span, ``texture`` and ``seed`` as in `extrapolate`; ``device``: "cpu" or "cuda")."""
        return render(self.model, rate, start_s, end_s, progress, texture, seed, device)

    def upsample(
        self,
        rate: int,
        low_band: str = "input",
        high_band: str = "model",
        clip: str | os.PathLike | Clip | None = None,
        seed: int = 0,
        max_snr_cost_db: float | None = 1.5,
        level: str = "auto",
        dynamics: bool = True,
        snr_cost_case: str = "worst",
        device: str = "cpu",
    ) -> np.ndarray:
        """The whole fitted span at ``rate`` Hz: (round(duration_s·rate),) float64.

        The input's band is kept and the band above it synthesised (see `sonode.tasks.upsample`).

        Args:
            rate: output rate in Hz.
            low_band: "input" (band-limited interpolation of the fitted samples) or "model"
                (the model's rendering).
            high_band: "model" (partials and noise floor continued from the clip and the fitted
                modes) or "none".
            clip: the fitted samples for ``low_band="input"``: a `Clip` or file path (read as
                recorded in ``info["source"]``). Default: the clip of this session's fit, else
                the source file recorded in the model.
            seed: of the synthesised band's random phases.
            max_snr_cost_db, level, dynamics, snr_cost_case: see
                `sonode.tasks.band_extension.extend_band` (the band's SNR-cost bound, its level
                estimator, partials following the pitch, the cost bounded: worst, expected or
                validated).
            device: where a model rendering runs (``low_band="model"``), as in `render`.
        """
        from sonode.tasks.upsample import upsample_samples

        samples = self.fitted_samples(clip).samples
        out, _ = upsample_samples(
            samples,
            self.sample_rate,
            int(rate),
            model=self.model,
            low_band=low_band,
            high_band=high_band,
            seed=seed,
            max_snr_cost_db=max_snr_cost_db,
            level=level,
            dynamics=dynamics,
            snr_cost_case=snr_cost_case,
            device=device,
        )
        return out

    def fitted_samples(self, clip: str | os.PathLike | Clip | None = None) -> Clip:
        """The samples the model was fitted on: ``clip`` if given (a `Clip`, or a path read with the
        recorded channel, start, rate and length), else this session's clip, else the recorded source.

        Raises:
            sonode.errors.AudioInputError: the file cannot be read.
            ValueError: the samples do not have the fitted span's rate and length.
        """
        if clip is None and self._clip is not None:
            clip = self._clip
        if not isinstance(clip, Clip):
            source = self.info.get("source", {})
            path = clip if clip is not None else source.get("path")
            if path is None:
                raise ValueError("the model records no source clip; pass the fitted clip")
            clip = read_clip(
                path,
                channel=source.get("channel", "mix"),
                start_s=source.get("start_s", 0.0),
                duration_s=self.duration_s,
                rate=self.sample_rate,
            )
        n_fitted = self.model.config.n_samples
        if clip.sample_rate == self.sample_rate and abs(clip.n_samples - n_fitted) <= 2:
            # a re-read through a resampler may round the length differently by a sample
            samples = np.pad(clip.samples, (0, max(0, n_fitted - clip.n_samples)))[:n_fitted]
            return replace(clip, samples=samples)
        raise ValueError(
            f"the clip has {clip.n_samples} samples at {clip.sample_rate} Hz but the model was "
            f"fitted on {self.model.config.n_samples} at {self.sample_rate} Hz; pass the fitted clip"
        )

    def extrapolate(
        self,
        seconds: float,
        rate: int | None = None,
        with_context: bool = False,
        texture: float | str = 0.0,
        seed: int = 0,
        device: str = "cpu",
    ) -> np.ndarray:
        """``seconds`` of continuation after the fitted span (see `sonode.tasks.render.extrapolate`):
        by default its mean (the best prediction in SNR); ``texture=1`` adds the stochastic part
        that keeps the clip's level and spectrum (`sonode.model.texture`), drawn with ``seed``;
        ``texture="auto"`` draws it where the fit chose it on the clip's held-back end
        (`sonode.model.texture_choice`; the model's ``config.continuation_texture``); ``device`` as
        in `render`."""
        return extrapolate(
            self.model,
            seconds,
            rate=rate,
            with_context=with_context,
            texture=texture,
            seed=seed,
            device=device,
        ).samples

    def free_run(self) -> np.ndarray:
        """The model's one trajectory: the free run from its trajectory state, without restarts,
        over the fitted span (at most its first `sonode.model.init.TRAJECTORY_S`), at the fitted
        rate, in file amplitude: shape (n,)."""
        config = self.model.config
        n = min(config.n_samples, int(TRAJECTORY_S * config.sample_rate))
        with torch.no_grad():
            return self.model.denormalise(self.model.trajectory(n))

    def save_training_curve(self, path: str | os.PathLike, title: str | None = None) -> bool:
        """Write the loss/SNR-per-epoch PNG; False (nothing written) when no epoch was trained,
        e.g. ``steps=0`` or a target SNR the initial linear fit already reaches."""
        from sonode.plot.figures import save_fit_report_png

        if not self.info.get("history"):
            return False
        save_fit_report_png(path, self.info["history"], title=title)
        return True

    def save(self, path: str | os.PathLike) -> None:
        """Write the model file atomically (tensors + JSON metadata, loadable without code).

        Wall-clock figures are left out (they are in the fit report): the same clip, options,
        seed, step count and thread count then give a byte-identical model file.
        """
        self.model.save(path, without_timings(self.info))


def load(path: str | os.PathLike) -> Fitted:
    """Read a model file written by `Fitted.save` (never executes code from the file).

    The descriptive metadata (source, fit report, history) is kept only where its types are what
    sonode writes: a crafted or damaged file may hold anything there (see `checked_info`)."""
    model, info = SonodeModel.load(path)
    return Fitted(model, checked_info(info))


def fit(
    clip: str | os.PathLike | Clip,
    *,
    rate: int | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
    channel: str | int = "mix",
    threads: int | None = None,
    on_epoch: Callable[[EpochRecord, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every_s: float = 30.0,
    resume: bool = False,
    **options: Any,
) -> Fitted:
    """Fit a neural ODE decoder to an audio clip.

    Args:
        clip: a file path (WAV/FLAC/OGG) or a `Clip` already read.
        rate: resample to this rate in Hz before fitting (default: the file's rate).
        start_s, duration_s, channel: which part of the file (see `sonode.io.clip.read_clip`).
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
        **options: fields of `FitOptions` (max_time_s, steps, target_snr_db, latent_dim, seed, ...;
            device="cuda" trains the global model on the GPU in float32, docs/devices.md).

    Returns:
        A `Fitted` model whose ``info["fit"]`` holds the fit report (without the per-epoch history,
        which is in ``info["history"]``).

    Memory: with glibc (Linux) the fit changes malloc's settings for the whole process while it
    runs (large blocks from the heap, up to 512 MiB of freed memory kept between steps), so other
    threads allocate that way meanwhile. When it ends, also by an exception, glibc's defaults are
    set again and the memory returned; settings of your own (``mallopt``, ``MALLOC_*``) are not
    restored (docs/design.md, "Memory during a fit").

    Raises:
        sonode.errors.AudioInputError: the clip cannot be used.
        ValueError: an option is invalid (the message names it).
        sonode.model.device.DeviceError: ``device="cuda"`` and torch sees no CUDA device.
        sonode.model.checkpoint.CheckpointError: ``resume`` and the checkpoint is missing, damaged,
            or belongs to another clip or other options.
    """
    unknown = sorted(set(options) - set(FIT_OPTION_NAMES))
    if unknown:
        raise ValueError(f"unknown fit option(s) {unknown}; valid: {', '.join(FIT_OPTION_NAMES)}")
    fit_options = FitOptions(**options)
    resolve_device(fit_options.device)  # no CUDA device: refused before the clip is read
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path=, the checkpoint to continue from")
    plan = None
    if checkpoint_path is not None:
        plan = CheckpointPlan(
            Path(checkpoint_path),
            every_s=checkpoint_every_s,
            resume=resume,
            source=str(clip.source_path if isinstance(clip, Clip) else clip),
        )
    if threads is not None:
        torch.set_num_threads(int(threads))
    if not isinstance(clip, Clip):
        clip = read_clip(
            clip,
            channel=channel,
            start_s=start_s,
            duration_s=duration_s,
            rate=rate,
            max_samples=max_fit_samples(rate or DEFAULT_RATE_HZ),  # (the fit checks its own rate)
        )
    elif rate is not None and rate != clip.sample_rate:
        raise ValueError("rate= only applies when fit() reads the file; resample the Clip first")
    model, report = fit_samples(
        clip.samples,
        clip.sample_rate,
        fit_options,
        on_epoch=on_epoch,
        should_stop=should_stop,
        checkpoint=plan,
    )
    summary = report.as_dict()
    history = summary.pop("history")
    info = {
        "source": {
            "path": str(clip.source_path),
            "name": Path(clip.source_path).name,
            "source_rate": clip.source_rate,
            "channels": clip.source_channels,
            "channel": clip.channel,
            "start_s": clip.start_s,
        },
        "sample_rate": clip.sample_rate,
        "duration_s": clip.duration_s,
        "fit": summary,
        "history": history,
        "versions": {
            "sonode": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "threads": torch.get_num_threads(),
    }
    # What the fitted trajectory holds above the clip's Nyquist frequency (aliases at the training
    # grid; added treble when read finely): rendered at 4× the rate over the first (up to) 2 s.
    # (not when stopped or out of time: a render at 4x the rate, about a second at 48 kHz)
    start = time.perf_counter()
    budget_s = fit_options.max_time_s
    skipped = (
        "stopped"
        if should_stop is not None and should_stop()
        else "--max-time"
        if budget_s is not None and summary["wall_time_s"] >= budget_s
        else ""
    )
    energy_above_db = math.nan if skipped else model_energy_above_db(model)
    info["fit"]["energy_above_nyquist_db"] = (
        energy_above_db if math.isfinite(energy_above_db) else None
    )
    # wall seconds of the pieces outside the training loop (left out of model files, like all timings)
    info["fit"]["time_breakdown_s"] = {
        "identification": summary.get("identification", {})
        .get("time_breakdown_s", {})
        .get("identification"),
        "energy_above_nyquist": f"skipped ({skipped})"
        if skipped
        else round(time.perf_counter() - start, 4),
    }
    # the estimate the fit was admitted with beside the process's peak so far (ru_maxrss: KiB,
    # bytes on macOS; none on Windows); left out of model files, like the timings
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if resource else 0
    peak_mib = peak >> (20 if sys.platform == "darwin" else 10)
    estimate = estimated_peak_bytes(clip.samples.shape[0], clip.sample_rate, fit_options)
    info["fit"]["memory_mib"] = {"estimate": estimate >> 20, "peak": peak_mib or None}
    return Fitted(model, info, clip)
