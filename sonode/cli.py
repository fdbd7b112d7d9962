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


def _device(ctx, param, value: str):
    import torch

    if value == "cuda" or (value == "auto" and torch.cuda.is_available()):
        # The model and engine run in float64 on the CPU; say so rather than silently ignore it.
        if value == "cuda":
            raise click.BadParameter("this version of sonode runs on the CPU only (use --device cpu)")
    return "cpu"


def _progress_printer(quiet: bool, max_time_s: float | None, steps: int | None):
    """An in-place progress line on stderr: epoch, loss, SNR, elapsed / remaining."""
    if quiet:
        return None

    def show(record, best_snr: float) -> None:
        remaining = []
        if max_time_s is not None:
            remaining.append(max_time_s - record.elapsed_s)
        if steps:
            remaining.append(record.elapsed_s / record.epoch * (steps - record.epoch))
        left = f" | ~{max(0.0, min(remaining)):.0f} s left" if remaining else ""
        click.echo(f"\r  epoch {record.epoch:5d} | loss {record.loss:.3e} | SNR {record.snr_db:6.2f} dB "
                   f"(best {best_snr:6.2f}) | {record.elapsed_s:6.1f} s{left}   ", err=True, nl=False)

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
                     callback=_positive(float), help="Wall-clock training budget (seconds)."),
        click.option("--steps", type=click.IntRange(min=0), help="Maximum optimiser steps."),
        click.option("--target-snr", "target_snr_db", type=float, help="Stop once the fit reaches this SNR (dB)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
        _device_option,
        click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch."),
        click.option("--latent-dim", type=click.IntRange(min=2), default=128, show_default=True,
                     help="Latent dimension d (even): d/2 damped oscillators."),
        click.option("--hop", "hop_samples", type=click.IntRange(min=8), default=256, show_default=True,
                     help="Segment hop (samples at the fitting rate); each segment has its own start state."),
        click.option("--overlap", "overlap_samples", type=click.IntRange(min=0), default=32, show_default=True,
                     help="Cross-fade between segments (samples)."),
        click.option("--hidden", type=click.IntRange(min=1), default=64, show_default=True,
                     help="Width of the correction MLP."),
        click.option("--lp-order", type=click.IntRange(min=2), default=256, show_default=True,
                     help="Order of the linear predictor whose poles initialise the oscillators."),
        click.option("--continuation-samples", type=click.IntRange(min=0), default=512, show_default=True,
                     help="Last samples that fix the state continuing the sound (0: the last segment's)."),
        click.option("--continuation-steps", type=click.IntRange(min=0), default=10, show_default=True,
                     help="Optimiser steps fitting that state once the dynamics are trained."),
        click.option("--gradient", type=click.Choice(["adjoint", "backprop"]), default="adjoint",
                     show_default=True, help="How gradients are computed."),
        click.option("--checkpoint-every", "checkpoint_every_s", type=click.FloatRange(min=0), default=30.0,
                     show_default=True, help="Seconds between resumable checkpoints (<model>.ckpt, deleted "
                     "when the fit completes); a crash loses at most this much training. 0: none."),
        click.option("--resume", is_flag=True, help="Continue the interrupted fit saved in <model>.ckpt (same "
                     "clip and options; --max-time, --steps and --target-snr may change)."),
        click.option("--quiet", is_flag=True, help="No progress output."),
    ]):
        f = decorator(f)
    return f


def _run_fit(clip: str, model_out: Path | None, quiet: bool, device: str, **kw) -> tuple[Any, Path]:
    """Fit ``clip`` and write model, reconstruction, report and loss curve. Returns (fitted, model path).

    A checkpoint <model>.ckpt is written while fitting (--checkpoint-every) and deleted once the
    outputs of a completed fit are written; an interrupted fit keeps it for --resume.
    """
    from sonode.api import fit
    from sonode.audio_io import check_output_path, write_wav
    from sonode.model.checkpoint import checkpoint_path_for, remove_checkpoint

    stem = Path(clip).stem
    model_path = Path(model_out) if model_out else OUTPUT_DIR / f"{stem}.sonode"
    check_output_path(model_path, [clip])
    checkpoint_path = checkpoint_path_for(model_path)
    check_output_path(checkpoint_path, [clip])
    if kw["overlap_samples"] > kw["hop_samples"]:
        raise click.BadParameter(f"--overlap ({kw['overlap_samples']}) must not exceed --hop "
                                 f"({kw['hop_samples']})", param_hint="--overlap")
    if kw["latent_dim"] % 2:
        raise click.BadParameter(f"must be even, got {kw['latent_dim']}", param_hint="--latent-dim")
    if not quiet:
        action = f"resuming {checkpoint_path}" if kw["resume"] else f"fitting {clip}"
        if not kw["resume"] and checkpoint_path.exists():
            action += f" (replacing the checkpoint of an earlier fit, {checkpoint_path}; --resume continues it)"
        click.echo(f"sonode: {action} (budget {kw['max_time_s']:.0f} s; Ctrl-C stops and keeps the best)", err=True)
    # The flag covers the writing of the outputs too, so a signal then cannot leave them half done.
    with _StopFlag() as stop:
        fitted = fit(clip, on_epoch=_progress_printer(quiet, kw["max_time_s"], kw["steps"]), should_stop=stop,
                     checkpoint_path=checkpoint_path, **kw)
        if not quiet:
            click.echo("", err=True)
        report = fitted.info["fit"]
        out_dir = model_path.parent
        recon_path = out_dir / f"{stem}.recon.wav"
        fitted.save(model_path)
        write_wav(recon_path, fitted.render().samples, fitted.sample_rate, protect=[clip])
        report_path = out_dir / f"{stem}.fit.json"
        _write_json(report_path, {**fitted.info, "model_file": str(model_path), "device": device})
        fitted.save_training_curve(out_dir / f"{stem}.fit.png",
                                   title=f"{Path(clip).name}: reconstruction SNR {report['snr_db']:.1f} dB")
        if report["stop_reason"] != "interrupted":  # the outputs are safely written: it is redundant now
            remove_checkpoint(checkpoint_path)
    if not quiet:
        click.echo(f"  SNR {report['snr_db']:.2f} dB (fine solve {report['fine_snr_db']:.2f} dB, "
                   f"initial {report['initial_snr_db']:.2f} dB) after {report['epochs']} epochs "
                   f"in {report['wall_time_s']:.1f} s; gradient: {report['gradient']}; energy above "
                   f"Nyquist {_db_text(report.get('energy_above_nyquist_db'))}", err=True)
        click.echo(f"  wrote {model_path}, {recon_path}, {report_path}", err=True)
    _warn_discretisation(report)
    if stop.signal is not None:
        resume = (f"; to continue, rerun the same command with --resume (checkpoint {checkpoint_path})"
                  if checkpoint_path.exists() else "")
        click.echo(f"sonode: interrupted by {stop.name}; the best model so far is saved in {model_path}{resume}",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    return fitted, model_path


def _warn_discretisation(report: dict) -> None:
    from sonode.model.train import DISCRETISATION_GOAL_DB

    if report.get("discretisation_fallback"):
        click.echo("sonode: WARNING: the trained model changed when solved more finely (it had learned its "
                   "discretisation); the identified linear model was kept instead", err=True)
    if report["discretisation_snr_db"] < DISCRETISATION_GOAL_DB:
        click.echo(f"sonode: WARNING: the training solve and a fine solve differ (agreement "
                   f"{report['discretisation_snr_db']:.1f} dB < {DISCRETISATION_GOAL_DB:.0f} dB): the model has "
                   "learned its discretisation, so upsampling it is not meaningful", err=True)


def _write_json(path: Path, payload: dict) -> None:
    from sonode.fileutil import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sonode")
def main():
    """sonode: model one audio clip as the trajectory of a neural ODE.

    Fit a clip (`sonode fit`), then read the fitted continuous-time signal at any rate
    (`render`, `upsample`) or past the clip's end (`extrapolate`).
    """


@main.command()
@click.argument("clip", type=click.Path(dir_okay=True))
@click.option("-o", "--output", "model_out", type=click.Path(), help="Model file (default outputs/<stem>.sonode).")
@_fit_options
@_fail_cleanly
def fit(clip, model_out, quiet, device, **kw):
    """Fit a neural ODE decoder to CLIP (WAV/FLAC/OGG).

    Writes the model, the reconstruction <stem>.recon.wav, the report <stem>.fit.json and the loss
    curve <stem>.fit.png next to the model (default folder: outputs/).
    """
    _run_fit(clip, model_out, quiet, device, **kw)


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
        f"solver:       lawson_rk4 (exact oscillators), h = 1/{cfg.sample_rate} s",
    ]
    if report:
        lines += [
            f"fit SNR:      {report['snr_db']:.2f} dB (initial linear fit {report['initial_snr_db']:.2f} dB)",
            f"fine solve:   {report['fine_snr_db']:.2f} dB; discretisation check "
            f"{report['discretisation_snr_db']:.1f} dB (goal ≥ {DISCRETISATION_GOAL_DB:.0f})",
            f"training:     {report['epochs']} epochs, gradient {report['gradient']}, stopped by "
            f"{report['stop_reason']}",
        ]
        if "energy_above_nyquist_db" in report:
            lines.append(f"above Nyquist: {_db_text(report['energy_above_nyquist_db'])} of the energy when rendered "
                         f"at 4x the rate (first 2 s)")
    click.echo("\n".join(lines))


def _db_text(value: float | None) -> str:
    return "none (-inf dB)" if value is None else f"{value:.1f} dB"


def _write_rendering(rendering, out: str, subtype: str, protect: list[str], quiet: bool) -> None:
    from sonode.audio_io import write_wav

    n_clipped = write_wav(out, rendering.samples, rendering.sample_rate, subtype=subtype, protect=protect)
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
@_fail_cleanly
def render_cmd(model, out, rate, start_s, end_s, subtype, device, quiet):
    """Write MODEL's trajectory over any span at any rate (default: the reconstruction)."""
    from sonode.api import load

    if start_s < 0:
        raise click.BadParameter(f"must be ≥ 0, got {start_s}", param_hint="--start")
    fitted = load(model)
    _write_rendering(fitted.render(rate=rate, start_s=start_s, end_s=end_s, progress=_bar(quiet)),
                     out, subtype, [model], quiet)


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
    from sonode.render import Rendering

    if out_rate is None:
        raise click.BadParameter("is required: the output rate in Hz", param_hint="--rate")
    if _is_model_file(source):
        fitted = load(source)
    else:
        fitted, _ = _run_fit(source, model_out, quiet, device, **kw)
    samples = fitted.upsample(out_rate, low_band=low_band, high_band=high_band, clip=fitted_clip)
    _write_rendering(Rendering(samples=samples, sample_rate=out_rate, start_s=0.0), out, subtype,
                     [source] + ([fitted_clip] if fitted_clip else []), quiet)


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
@_fail_cleanly
def extrapolate_cmd(model, out, seconds, rate, with_context, subtype, device, quiet):
    """Continue MODEL's sound for --seconds past the end of the fitted span."""
    from sonode.api import load
    from sonode.render import extrapolate

    fitted = load(model)
    _write_rendering(extrapolate(fitted.model, seconds, rate=rate, with_context=with_context,
                                 progress=_bar(quiet)), out, subtype, [model], quiet)



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
@click.option("--quiet", is_flag=True)
@_fail_cleanly
def eval_cmd(clips, report_dir, low_rate, budget_s, horizon_s, duration_s, threads, quiet):
    """Score sonode against the baselines on CLIPS: upsampling, continuation, reconstruction."""
    from sonode.evaluate import EvalOptions, evaluate, results_markdown

    options = EvalOptions(low_rate=low_rate, budget_s=budget_s, horizon_s=horizon_s, duration_s=duration_s,
                          threads=threads)
    results = evaluate(list(clips), report_dir, options,
                       on_clip=None if quiet else (lambda c: click.echo(f"\nsonode eval: {c}", err=True)),
                       on_epoch=_progress_printer(quiet, budget_s, None))
    click.echo("\n" + results_markdown(results))
    if not quiet:
        click.echo(f"wrote {Path(report_dir) / 'results.json'}, results.md and pictures", err=True)


@main.command()
@click.argument("model", type=click.Path())
@click.option("--clip", type=click.Path(), help="The original clip (default: the source recorded in the model).")
@click.option("-o", "--output", "out", type=click.Path(), required=True, help="PNG file.")
@click.option("--at", "centers_s", type=float, multiple=True,
              help="Centre of a 20 ms waveform zoom (seconds; repeatable). Default: 3 spread over the span.")
@_fail_cleanly
def plot(model, clip, out, centers_s):
    """Picture of MODEL: waveform zooms and spectrograms against the clip, and the training curve."""
    from sonode.api import load
    from sonode.audio_io import check_output_path, read_clip
    from sonode.plotting import save_comparison_png

    check_output_path(out, [model] + ([clip] if clip else []))
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
