"""Command-line interface: a thin shell over `sonode.api` (one command per verb)."""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from sonode.errors import SonodeError

OUTPUT_DIR = Path("outputs")
EXIT_INTERRUPTED = 130
EXIT_DIVERGED = 3


def _fail_cleanly(command: Callable) -> Callable:
    """Turn library errors into one line on stderr and a non-zero exit (traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        debug = kwargs.pop("debug", False)
        try:
            return command(*args, **kwargs)
        except (SonodeError, ValueError, RuntimeError, OSError) as err:
            if debug:
                raise
            click.echo(f"sonode: error: {err}", err=True)
            sys.exit(2 if isinstance(err, (SonodeError, ValueError)) else 1)

    return click.option("--debug", is_flag=True, help="Show the full traceback on errors.")(wrapper)


def _positive(kind: type, allow_none: bool = True):
    def check(ctx, param, value):
        if value is None and allow_none:
            return value
        if not value > 0:
            raise click.BadParameter(f"must be > 0, got {value}")
        return kind(value)

    return check


def _channel(ctx, param, value: str):
    if value == "mix":
        return value
    try:
        index = int(value)
    except ValueError:
        raise click.BadParameter(f"must be 'mix' or a 0-based channel number, got {value!r}") from None
    if index < 0:
        raise click.BadParameter(f"channel numbers start at 0, got {index}")
    return index


def _db(value, digits: int = 2) -> str:
    """A dB figure from a report: None stands for a value that is not finite (e.g. an exact fit)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def _latent_dim(ctx, param, value: str):
    if value == "auto":
        return None
    try:
        dim = int(value)
    except ValueError:
        raise click.BadParameter(f"must be an even number ≥ 2 or 'auto', got {value!r}") from None
    if dim < 2 or dim % 2:
        raise click.BadParameter(f"must be an even number ≥ 2 or 'auto', got {value!r}")
    return dim


def _device(ctx, param, value: str):
    import torch

    if value == "cuda" or (value == "auto" and torch.cuda.is_available()):
        # The model and engine run in float64 on the CPU; say so rather than silently ignore it.
        if value == "cuda":
            raise click.BadParameter("this version of sonode runs on the CPU only (use --device cpu)")
    return "cpu"


def _progress_printer(quiet: bool, max_time_s: float | None, steps: int | None):
    """An in-place progress line on stderr: step, loss, SNR of this step, SNR of the kept model
    (the best parameters that passed the periodic solver check), elapsed / remaining."""
    if quiet:
        return None

    def show(record, best_snr: float) -> None:
        remaining = []
        if max_time_s is not None:
            remaining.append(max_time_s - record.elapsed_s)
        if steps:
            remaining.append(record.elapsed_s / record.epoch * (steps - record.epoch))
        left = f" | ~{max(0.0, min(remaining)):.0f} s left" if remaining else ""
        click.echo(f"\r  step {record.epoch:5d} | loss {record.loss:.3e} | SNR {record.snr_db:6.2f} dB "
                   f"(kept {best_snr:6.2f}) | {record.elapsed_s:6.1f} s{left}   ", err=True, nl=False)

    return show


class _StopFlag:
    """SIGINT/SIGTERM set a flag instead of killing the fit, so the best model can be saved.

    The first signal also puts the previous handlers back, so that a second Ctrl-C aborts at
    once (outputs are written atomically, so even that leaves no partial file).
    """

    def __init__(self):
        self.signal: int | None = None

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.signal = signum
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def __call__(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        """The signal received, e.g. "SIGINT" (empty if none)."""
        return signal.Signals(self.signal).name if self.signal is not None else ""


_device_option = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                              show_default=True, callback=_device, help="Where to compute.")
_out_rate_option = click.option("--rate", type=int, callback=_positive(int),
                                help="Output rate in Hz (default: the clip's).")
_force_option = click.option("--force", is_flag=True, help="Replace existing output files even if sonode did not "
                             "write them (inputs are never replaced); for several clips, also refit complete ones.")


def _fit_options(f, rate_flag: str = "--rate"):
    """Options shared by `fit` and `upsample` (which fits when given a clip; there --rate is the
    output rate, so the fitting rate is --fit-rate)."""
    for decorator in reversed([
        click.option(rate_flag, "rate", type=int, callback=_positive(int),
                     help="Resample the clip to HZ before fitting."),
        click.option("--start", "start_s", type=float, default=0.0, show_default=True,
                     help="Start of the clip in the file (seconds)."),
        click.option("--duration", "duration_s", type=float, callback=_positive(float),
                     help="Length to fit (seconds; default: to the end of the file)."),
        click.option("--channel", default="mix", show_default=True, callback=_channel,
                     help="'mix' (mean of channels) or a 0-based channel number."),
        click.option("--max-time", "max_time_s", type=float, default=120.0, show_default=True,
                     callback=_positive(float), help="Wall-clock budget (seconds) of identification and "
                     "training. Every 25 steps the parameters are checked against the engine's reference "
                     "solver; only checked parameters become the kept model."),
        click.option("--steps", type=click.IntRange(min=0), help="Maximum optimiser steps."),
        click.option("--target-snr", "target_snr_db", type=float, help="Stop once the fit reaches this SNR (dB)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
        _device_option,
        click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch."),
        click.option("--latent-dim", default="256", show_default=True, callback=_latent_dim,
                     help="Latent dimension d (even): d/2 damped oscillators; 'auto': chosen per clip by "
                     "validation on held-back samples, at most --max-latent-dim."),
        click.option("--max-latent-dim", type=click.IntRange(min=2), default=256, show_default=True,
                     help="Largest d that 'auto' may choose."),
        click.option("--hop", "hop_samples", type=click.IntRange(min=8), default=256, show_default=True,
                     help="Segment hop (samples at the fitting rate); each segment has its own start state."),
        click.option("--overlap", "overlap_samples", type=click.IntRange(min=0), default=32, show_default=True,
                     help="Cross-fade between segments (samples)."),
        click.option("--hidden", type=click.IntRange(min=1), default=64, show_default=True,
                     help="Width of the correction MLP."),
        click.option("--lp-order", type=click.IntRange(min=2), default=1024, show_default=True,
                     help="Order of the linear predictor whose poles are the candidate oscillators."),
        click.option("--continuation-samples", type=click.IntRange(min=0), default=None,
                     help="Last samples that fix the state of the continuation ODE. Default: chosen, with "
                     "its order, by validation on the clip's last 50 ms. 0: the last segment continues."),
        click.option("--continuation-steps", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Deprecated, no effect: the continuation state is now fitted in closed form."),
        click.option("--batch-segments", type=click.IntRange(min=2), default=256, show_default=True,
                     help="Segments per optimiser step; longer clips train on random runs of this many "
                     "(memory and step time independent of the clip's length)."),
        click.option("--gradient", type=click.Choice(["adjoint", "backprop"]), default="adjoint",
                     show_default=True, help="How gradients are computed."),
        click.option("--checkpoint-every", "checkpoint_every_s", type=click.FloatRange(min=0), default=30.0,
                     show_default=True, help="Seconds between resumable checkpoints (<model>.ckpt, deleted "
                     "when the fit completes); a crash loses at most this much training. 0: none."),
        click.option("--resume", is_flag=True, help="Continue the interrupted fit saved in <model>.ckpt (same "
                     "clip and options; --max-time, --steps and --target-snr may change)."),
        click.option("--quiet", is_flag=True, help="No progress output."),
        _force_option,
    ]):
        f = decorator(f)
    return f


def _run_fit(clip: str, model_out: Path | None, quiet: bool, device: str, force: bool, **kw) -> tuple[Any, Path]:
    """Fit ``clip`` and write model, reconstruction, report and loss curve. Returns (fitted, model path).

    A checkpoint <model>.ckpt is written while fitting (--checkpoint-every) and deleted once the
    outputs of a completed fit are written; an interrupted fit keeps it for --resume.
    """
    from sonode.api import fit
    from sonode.batch import check_fit_outputs, fit_output_paths, write_fit_outputs

    stem = Path(clip).stem
    model_path = Path(model_out) if model_out else OUTPUT_DIR / f"{stem}.sonode"
    paths = fit_output_paths(model_path, stem)
    check_fit_outputs(paths, [clip], force)
    checkpoint_path = paths["checkpoint"]
    _check_fit_shape(kw)
    if not quiet:
        action = f"resuming {checkpoint_path}" if kw["resume"] else f"fitting {clip}"
        if not kw["resume"] and checkpoint_path.exists():
            action += f" (replacing the checkpoint of an earlier fit, {checkpoint_path}; --resume continues it)"
        click.echo(f"sonode: {action} (budget {kw['max_time_s']:.0f} s; the model is checked against the "
                   f"reference solver every 25 steps and only checked parameters are kept; Ctrl-C stops and "
                   "keeps them)", err=True)
    # The flag covers the writing of the outputs too, so a signal then cannot leave them half done.
    with _StopFlag() as stop:
        fitted = fit(clip, on_epoch=_progress_printer(quiet, kw["max_time_s"], kw["steps"]), should_stop=stop,
                     checkpoint_path=checkpoint_path, **kw)
        if not quiet:
            click.echo("", err=True)
        report = fitted.info["fit"]
        write_fit_outputs(fitted, clip, paths, {"device": device}, force)
    if not quiet:
        click.echo(f"  SNR {_db(report['snr_db'], 2)} dB (initial {_db(report['initial_snr_db'], 2)} dB, "
                   f"discretisation check {_db(report['discretisation_snr_db'], 1)} dB) after {report['epochs']} steps "
                   f"in {report['wall_time_s']:.1f} s; gradient: {report['gradient']}; energy above "
                   f"Nyquist {_db_text(report.get('energy_above_nyquist_db'))}", err=True)
        click.echo(f"  wrote {model_path}, {paths['recon']}, {paths['report']}", err=True)
    _warn_discretisation(report)
    if stop.signal is not None:
        resume = (f"; to continue, rerun the same command with --resume (checkpoint {checkpoint_path})"
                  if checkpoint_path.exists() else "")
        click.echo(f"sonode: interrupted by {stop.name}; the best model so far is saved in {model_path}{resume}",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    return fitted, model_path


def _check_fit_shape(kw: dict) -> None:
    if kw["overlap_samples"] > kw["hop_samples"]:
        raise click.BadParameter(f"--overlap ({kw['overlap_samples']}) must not exceed --hop "
                                 f"({kw['hop_samples']})", param_hint="--overlap")
    if kw["max_latent_dim"] % 2:
        raise click.BadParameter(f"must be even, got {kw['max_latent_dim']}", param_hint="--max-latent-dim")
    if kw["continuation_steps"]:
        click.echo("sonode: note: --continuation-steps no longer has an effect (the continuation state is "
                   "fitted in closed form) and will be removed", err=True)
        kw["continuation_steps"] = 0


def _warn_discretisation(report: dict) -> None:
    from sonode.model.train import DISCRETISATION_GOAL_DB

    if report.get("discretisation_fallback"):
        click.echo("sonode: WARNING: the trained model changed when solved more finely (it had learned its "
                   "discretisation); the identified linear model was kept instead", err=True)
    if report["discretisation_snr_db"] is not None and report["discretisation_snr_db"] < DISCRETISATION_GOAL_DB:
        click.echo(f"sonode: WARNING: the training solve and a fine solve differ (agreement "
                   f"{_db(report['discretisation_snr_db'], 1)} dB < {DISCRETISATION_GOAL_DB:.0f} dB): the model has "
                   "learned its discretisation, so upsampling it is not meaningful", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sonode")
def main():
    """sonode: model one audio clip as the trajectory of a neural ODE.

    Fit a clip (`sonode fit`), then read the fitted continuous-time signal at any rate
    (`render`, `upsample`) or past the clip's end (`extrapolate`).
    """


@main.command()
@click.argument("clips", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.option("-o", "--output", "model_out", type=click.Path(), help="Model file (default outputs/<stem>.sonode).")
@click.option("--out-dir", type=click.Path(file_okay=False), help="Several clips: output folder "
              "[default: outputs/]; it may be the clips' own folder.")
@click.option("--scheduler", help="Several clips: address of an existing Dask scheduler, e.g. tcp://HOST:8786 "
              "[default: $DASK_SCHEDULER_ADDRESS, else an embedded cluster on this machine].")
@click.option("--workers", type=click.IntRange(min=1), help="Several clips: worker processes of the embedded "
              "cluster [default: one per core, at most one per clip; with --threads T, cores / T].")
@_fit_options
@_fail_cleanly
def fit(clips, model_out, out_dir, scheduler, workers, quiet, device, **kw):
    """Fit a neural ODE decoder to CLIP (WAV/FLAC/OGG), or to several clips / folders of clips.

    Writes the model, the reconstruction <stem>.recon.wav, the report <stem>.fit.json and the loss
    curve <stem>.fit.png next to the model (default folder: outputs/).

    Several clips (or a folder, searched recursively, or --scheduler/--out-dir/--workers) run as
    independent fits on a Dask cluster, writing the same files per clip in --out-dir plus the
    summary sonode-batch.csv / .json; clips already complete are skipped (--force refits them),
    and the exit code is the number of clips that failed. See docs/batch.md.
    """
    if len(clips) == 1 and not Path(clips[0]).is_dir() and not (out_dir or scheduler or workers):
        _run_fit(clips[0], model_out, quiet, device, **kw)
        return
    _fit_batch(clips, model_out, out_dir, scheduler, workers, quiet, device, **kw)


def _fit_batch(clips, model_out, out_dir, scheduler, workers, quiet, device, force, **kw) -> None:
    from sonode.batch import fit_batch

    if model_out:
        raise click.UsageError("-o names one model file; with several clips give the output folder with --out-dir")
    _check_fit_shape(kw)
    kw.pop("resume")  # a batch always resumes a clip whose checkpoint is there
    try:
        failed = fit_batch(list(clips), out_dir or OUTPUT_DIR, kw, {"device": device}, force=force,
                           scheduler=scheduler, workers=workers, quiet=quiet)
    except KeyboardInterrupt:
        click.echo("\nsonode: interrupted; rerun the same command to continue (finished clips are skipped, "
                   "unfinished ones resume from their checkpoints)", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(min(failed, 100))


@main.command()
@click.argument("model", type=click.Path())
@_fail_cleanly
def info(model):
    """Print what MODEL is: rate, span, size, fit quality and method."""
    from sonode.api import load
    from sonode.model.train import DISCRETISATION_GOAL_DB

    fitted = load(model)
    cfg, meta = fitted.model.config, fitted.info
    n_params = sum(p.numel() for p in fitted.model.parameters())
    report = meta.get("fit", {})
    lines = [
        f"model:        {model}",
        f"source:       {meta.get('source', {}).get('path', '?')}",
        f"rate:         {cfg.sample_rate} Hz",
        f"span:         0 .. {cfg.n_samples / cfg.sample_rate:.4f} s ({cfg.n_samples} samples)",
        f"latent dim:   {cfg.latent_dim} ({cfg.n_modes} damped oscillators + MLP {cfg.layers}x{cfg.hidden})",
        f"segments:     {cfg.layout.n_segments} (hop {cfg.hop_samples}, cross-fade {cfg.overlap_samples} samples)",
        f"parameters:   {n_params}",
        "solver:       modal (exact oscillators, adaptive dopri5 envelope); reference: lawson_rk4",
    ]
    ident = report.get("identification", {}) if report else {}
    if ident.get("continuation"):
        cont = ident["continuation"]
        lines.append(f"continuation: linear ODE of {cont['modes']} modes (order {cont['order']}, state from the "
                     f"last {cont['window_samples']} samples; validation SNR {_db(cont['validation_snr_db'], 1)} dB)")
    if report:
        lines += [
            f"fit SNR:      {_db(report['snr_db'], 2)} dB (initial linear fit {_db(report['initial_snr_db'], 2)} dB)",
            f"reference:    discretisation check {_db(report['discretisation_snr_db'], 1)} dB (fast vs "
            f"reference solve; goal ≥ {DISCRETISATION_GOAL_DB:.0f})",
            f"training:     {report['epochs']} steps, gradient {report['gradient']}, stopped by "
            f"{report['stop_reason']}",
            f"trajectory:   one free run from the first state: {_db(report.get('trajectory_snr_db'))} dB",
        ]
        if "energy_above_nyquist_db" in report:
            lines.append(f"above Nyquist: {_db_text(report['energy_above_nyquist_db'])} of the energy when rendered "
                         f"at 4x the rate (first 2 s)")
    click.echo("\n".join(lines))


def _db_text(value: float | None) -> str:
    return "none (-inf dB)" if value is None else f"{value:.1f} dB"


def _write_rendering(rendering, out: str, subtype: str, protect: list[str], quiet: bool, force: bool) -> None:
    from sonode.audio_io import write_wav

    n_clipped = write_wav(out, rendering.samples, rendering.sample_rate, subtype=subtype, protect=protect,
                          force=force)
    if not quiet:
        click.echo(f"wrote {out}: {len(rendering.samples)} samples at {rendering.sample_rate} Hz"
                   + (f" ({n_clipped} clipped)" if n_clipped else ""), err=True)
    if rendering.stopped_at_s is not None:
        click.echo(f"sonode: the free run left ±10× the clip's peak at t = {rendering.stopped_at_s:.4f} s; "
                   "stopped there (the output holds what came before)", err=True)
        sys.exit(EXIT_DIVERGED)


def _bar(quiet: bool):
    """A click progress bar over segments, shown only for renders taking more than a second."""
    state: dict[str, Any] = {"start": time.perf_counter(), "bar": None}

    def update(done: int, total: int) -> None:
        if quiet:
            return
        if state["bar"] is None and time.perf_counter() - state["start"] > 1.0:
            state["bar"] = click.progressbar(length=total, label="rendering", file=sys.stderr)
            state["bar"].__enter__()
            state["shown"] = 0
        if state["bar"] is not None:
            state["bar"].update(done - state["shown"])
            state["shown"] = done
            if done >= total:
                state["bar"].__exit__(None, None, None)

    return update


_out_option = click.option("-o", "--output", "out", type=click.Path(), required=True, help="Output WAV file.")
_subtype_option = click.option("--subtype", type=click.Choice(["FLOAT", "PCM_16", "PCM_24"]), default="FLOAT",
                               show_default=True, help="WAV sample format.")


@main.command(name="render")
@click.argument("model", type=click.Path())
@_out_option
@_out_rate_option
@click.option("--start", "start_s", type=float, default=0.0, show_default=True, help="Start (seconds of model time).")
@click.option("--end", "end_s", type=float, help="End (seconds; default: end of the fitted span).")
@_subtype_option
@_device_option
@click.option("--quiet", is_flag=True)
@_force_option
@_fail_cleanly
def render_cmd(model, out, rate, start_s, end_s, subtype, device, quiet, force):
    """Write MODEL's trajectory over any span at any rate (default: the reconstruction)."""
    from sonode.api import load
    from sonode.audio_io import check_output_path

    if start_s < 0:
        raise click.BadParameter(f"must be ≥ 0, got {start_s}", param_hint="--start")
    check_output_path(out, [model], force=force)
    fitted = load(model)
    _write_rendering(fitted.render(rate=rate, start_s=start_s, end_s=end_s, progress=_bar(quiet)),
                     out, subtype, [model], quiet, force)


@main.command()
@click.argument("source", type=click.Path())
@_out_option
@_subtype_option
@click.option("--rate", "out_rate", type=int, callback=_positive(int), help="Output rate in Hz (required).")
@click.option("--low-band", type=click.Choice(["input", "model"]), default="input", show_default=True,
              help="Below the input's band edge: band-limited interpolation of the fitted samples, or the "
              "model's rendering.")
@click.option("--high-band", type=click.Choice(["model", "none"]), default="model", show_default=True,
              help="Above the input's band edge: partials and noise floor continued from the clip and the "
              "fitted modes, or nothing.")
@click.option("--clip", "fitted_clip", type=click.Path(),
              help="When SOURCE is a model: the clip it was fitted on (default: the source file recorded in "
              "the model, read with the recorded channel, start and rate).")
@click.option("--model-out", type=click.Path(), help="When SOURCE is a clip: where to save the fitted model.")
@functools.partial(_fit_options, rate_flag="--fit-rate")
@_fail_cleanly
def upsample(source, out, subtype, out_rate, low_band, high_band, fitted_clip, model_out, quiet, device, **kw):
    """Write the whole fitted span of SOURCE at --rate HZ: the input's band kept, the band above it
    synthesised from the clip's structure and the fitted modes.

    SOURCE is a model file, or a clip (fitted first, with the same options as `sonode fit`; the
    fit's own rate is then the file's, or --fit-rate).
    """
    from sonode.api import load
    from sonode.audio_io import check_output_path
    from sonode.render import Rendering

    if out_rate is None:
        raise click.BadParameter("is required: the output rate in Hz", param_hint="--rate")
    check_output_path(out, [source], force=kw["force"])
    if _is_model_file(source):
        fitted = load(source)
    else:
        fitted, _ = _run_fit(source, model_out, quiet, device, **kw)
    samples = fitted.upsample(out_rate, low_band=low_band, high_band=high_band, clip=fitted_clip)
    _write_rendering(Rendering(samples=samples, sample_rate=out_rate, start_s=0.0), out, subtype,
                     [source] + ([fitted_clip] if fitted_clip else []), quiet, kw["force"])


def _is_model_file(path: str) -> bool:
    """Model files are torch zip archives; audio files never start with the zip magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


@main.command(name="extrapolate")
@click.argument("model", type=click.Path())
@_out_option
@click.option("--seconds", type=float, required=True, callback=_positive(float), help="Length of the continuation.")
@_out_rate_option
@click.option("--with-context", is_flag=True, help="Write the reconstruction followed by the continuation.")
@_subtype_option
@_device_option
@click.option("--quiet", is_flag=True)
@_force_option
@_fail_cleanly
def extrapolate_cmd(model, out, seconds, rate, with_context, subtype, device, quiet, force):
    """Continue MODEL's sound for --seconds past the end of the fitted span."""
    from sonode.api import load
    from sonode.audio_io import check_output_path
    from sonode.render import extrapolate

    check_output_path(out, [model], force=force)
    fitted = load(model)
    _write_rendering(extrapolate(fitted.model, seconds, rate=rate, with_context=with_context,
                                 progress=_bar(quiet)), out, subtype, [model], quiet, force)



@main.command(name="fill")
@click.argument("clip", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), help="Output audio file (same format, rate, channels "
              "and subtype as CLIP); the JSON report goes next to it as <OUT stem>.fill.json.")
@click.option("--gap", "gaps", type=(float, float), multiple=True, metavar="START END",
              help="A gap to fill, in seconds (repeatable).")
@click.option("--detect", is_flag=True, help="Also find dropouts (runs of identical samples, exact repeats) and "
              "isolated clicks inside sounding passages, and fill them.")
@click.option("--dry-run", is_flag=True, help="Only list the gaps (given and detected) as JSON; write nothing.")
@click.option("--method", type=click.Choice(["sonode", "sonode_fit", "janssen", "burg_xfade"]), default="sonode",
              show_default=True, help="sonode: the most likely trajectory through the gap of a linear ODE "
              "identified on both sides (order chosen on pseudo-gaps in the clip); sonode_fit: fitted neural "
              "ODEs run forward from the left and backward from the right, blended; janssen: gap-wise AR "
              "interpolation (Burg, order ≤ 1024); burg_xfade: two-sided Burg LPC with a cross-fade.")
@click.option("--context", "context_s", type=float, default=0.5, show_default=True, callback=_positive(float),
              help="Audio used on each side of a gap (seconds; nothing else of the clip is read by the filler).")
@click.option("--budget-s", type=float, default=10.0, show_default=True, callback=_positive(float),
              help="sonode_fit: fit time per gap (seconds, shared by the two sides).")
@click.option("--steps", type=click.IntRange(min=0), help="sonode_fit: cap on optimiser steps per fit.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed: of the residual drawn into each gap (sonode), of the fits (sonode_fit).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--quiet", is_flag=True)
@_fail_cleanly
def fill_cmd(clip, out, gaps, detect, dry_run, method, context_s, budget_s, steps, seed, threads, quiet):
    """Repair gaps, dropouts and clicks in CLIP from the audio on both sides.

    Only the samples inside the gaps change. A gap at the very start or end of CLIP is filled from
    the one side it has (the report says so).
    """
    from sonode.fill import FillSettings
    from sonode.fill_file import fill_file, report_path_for

    if not gaps and not detect:
        raise click.UsageError("give at least one --gap START END, or --detect")
    if out is None and not dry_run:
        raise click.BadParameter("is required (or use --dry-run)", param_hint="-o/--output")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    settings = FillSettings(method=method, context_s=context_s, budget_s=budget_s, steps=steps, seed=seed)
    report = fill_file(clip, out, list(gaps), settings, detect=detect, dry_run=dry_run,
                       on_gap=None if quiet else (lambda line: click.echo(f"sonode fill: {line}", err=True)))
    one_sided = [g for g in report["gaps"] if g["sides"] != "both"]
    for g in one_sided:
        click.echo(f"sonode: note: gap {g['start_s']:.4f}-{g['end_s']:.4f} s is at the clip's edge (or next to "
                   f"another gap): filled from the {g['sides']} side only", err=True)
    if dry_run:
        click.echo(json.dumps(report, indent=2))
    elif not quiet:
        click.echo(f"wrote {out} ({len(report['gaps'])} gap(s) filled) and {report_path_for(out)}", err=True)


@main.command(name="eval")
@click.argument("clips", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "report_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for results.json, results.md and the pictures.")
@click.option("--rate", "low_rate", type=int, default=16000, show_default=True, callback=_positive(int),
              help="Input rate of the upsampling task (the clip's own rate is the truth).")
@click.option("--budget", "budget_s", type=float, default=60.0, show_default=True, callback=_positive(float),
              help="Training budget of each fit (seconds); two fits per clip.")
@click.option("--horizon-s", type=float, default=0.2, show_default=True, callback=_positive(float),
              help="Length of the continuation task (seconds).")
@click.option("--duration", "duration_s", type=float, default=1.0, show_default=True, callback=_positive(float),
              help="Part of each clip used, from its start (seconds).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--scheduler", help="Evaluate the clips on an existing Dask scheduler, e.g. tcp://HOST:8786.")
@click.option("--workers", type=click.IntRange(min=1), help="Evaluate the clips on an embedded Dask cluster of "
              "this many worker processes [default: one after another here, as the budgets are wall-clock].")
@click.option("--task", type=click.Choice(["all", "fill"]), default="all", show_default=True,
              help="all: upsampling, continuation, reconstruction. fill: gaps of 10/20/40/80 ms punched into "
              "each clip (read at --rate), filled by sonode (--budget per gap), gap-wise Janssen and two-sided Burg.")
@click.option("--positions", type=click.IntRange(min=1), default=5, show_default=True,
              help="--task fill: gap positions per clip and length, inside the sounding part.")
@click.option("--quiet", is_flag=True)
@_force_option
@_fail_cleanly
def eval_cmd(clips, report_dir, low_rate, budget_s, horizon_s, duration_s, threads, scheduler, workers, task,
             positions, quiet, force):
    """Score sonode against the baselines on CLIPS: upsampling, continuation, reconstruction (or gap filling)."""
    from sonode.evaluate import EvalOptions, evaluate, results_markdown

    if task == "fill":
        from sonode.evaluate_fill import evaluate_fill, fill_markdown, write_results
        from sonode.fill import FillSettings

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        results = evaluate_fill(list(clips), low_rate, FillSettings(budget_s=budget_s), n_positions=positions,
                                on_gap=None if quiet else (lambda g: click.echo(f"sonode eval: {g}", err=True)))
        write_results(results, report_dir)
        click.echo(fill_markdown(results))
        return

    options = EvalOptions(low_rate=low_rate, budget_s=budget_s, horizon_s=horizon_s, duration_s=duration_s,
                          threads=threads)
    map_clips = None
    if scheduler or workers:
        from sonode.batch import eval_many

        map_clips = eval_many(scheduler, workers)
    results = evaluate(list(clips), report_dir, options,
                       on_clip=None if quiet else (lambda c: click.echo(f"\nsonode eval: {c}", err=True)),
                       on_epoch=_progress_printer(quiet, budget_s, None), force=force, map_clips=map_clips)
    click.echo("\n" + results_markdown(results))
    if not quiet:
        click.echo(f"wrote {Path(report_dir) / 'results.json'}, results.md and pictures", err=True)


@main.command()
@click.argument("model", type=click.Path())
@click.option("--clip", type=click.Path(), help="The original clip (default: the source recorded in the model).")
@click.option("-o", "--output", "out", type=click.Path(), required=True, help="PNG file.")
@click.option("--at", "centers_s", type=float, multiple=True,
              help="Centre of a 20 ms waveform zoom (seconds; repeatable). Default: 3 spread over the span.")
@_force_option
@_fail_cleanly
def plot(model, clip, out, centers_s, force):
    """Picture of MODEL: waveform zooms and spectrograms against the clip, and the training curve."""
    from sonode.api import load
    from sonode.audio_io import check_output_path, read_clip
    from sonode.plotting import save_comparison_png

    inputs = [model] + ([clip] if clip else [])
    for path in (out, Path(out).with_suffix(".fit.png")):
        check_output_path(path, inputs, force=force)
    fitted = load(model)
    source = fitted.info.get("source", {})
    clip = clip or source.get("path")
    recon = fitted.render().samples
    duration = fitted.duration_s
    centers = list(centers_s) or [duration * f for f in (0.1, 0.5, 0.9)]
    if clip and Path(clip).exists():
        truth = read_clip(clip, start_s=float(source.get("start_s", 0.0)), duration_s=duration,
                          rate=fitted.sample_rate, channel=source.get("channel", "mix")).samples[: recon.shape[0]]
        save_comparison_png(out, truth, {"sonode": recon[: truth.shape[0]]}, fitted.sample_rate, centers,
                            title=f"{Path(model).name} vs {Path(clip).name}")
        curve = Path(out).with_suffix(".fit.png")
        if fitted.save_training_curve(curve, title=f"{Path(model).name}: training"):
            click.echo(f"wrote {out} and {curve}", err=True)
        else:
            click.echo(f"wrote {out} (no training curve: the model was not trained)", err=True)
    elif fitted.save_training_curve(out, title=f"{Path(model).name}: training"):
        click.echo(f"wrote {out} (training curve only: pass --clip for the waveform comparison)", err=True)
    else:
        raise click.UsageError("the model's source clip is not found and it has no training curve: pass --clip")


if __name__ == "__main__":
    main()
