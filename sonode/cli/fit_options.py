"""The options of `sonode fit`, shared with `sonode upsample` (which fits when given a clip), and
the checks of their values (one-line errors, exit 2)."""

from __future__ import annotations

import math

import click

from sonode.cli.common import (
    device_option,
    fit_threads_option,
    force_option,
    positive_option,
    quiet_option,
)
from sonode.limits import (
    MAX_BATCH_SEGMENTS,
    MAX_CONTINUATION_SAMPLES,
    MAX_HIDDEN,
    MAX_HOP_SAMPLES,
    MAX_LATENT_DIM,
    MAX_LP_ORDER,
    MAX_TIME_S,
)


def _channel(ctx, param, value: str):
    if value == "mix":
        return value
    try:
        index = int(value)
    except ValueError:
        raise click.BadParameter(
            f"must be 'mix' or a 0-based channel number, got {value!r}"
        ) from None
    if index < 0:
        raise click.BadParameter(f"channel numbers start at 0, got {index}")
    return index


def _latent_dim(ctx, param, value: str):
    if value == "auto":
        return None
    try:
        dim = int(value)
    except ValueError:
        raise click.BadParameter(f"must be an even number ≥ 2 or 'auto', got {value!r}") from None
    if dim < 2 or dim % 2:
        raise click.BadParameter(f"must be an even number ≥ 2 or 'auto', got {value!r}")
    if dim > MAX_LATENT_DIM:
        raise click.BadParameter(f"{dim} is over the limit of {MAX_LATENT_DIM}")
    return dim


def _finite(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}")
    return value


def fit_options(f, rate_flag: str = "--rate"):
    """Options shared by `fit` and `upsample` (which fits when given a clip; there --rate is the
    output rate, so the fitting rate is --fit-rate)."""
    for decorator in reversed(
        [
            positive_option(
                *(("-r", rate_flag) if rate_flag == "--rate" else (rate_flag,)),
                "rate",
                kind=int,
                help="Resample the clip to HZ before fitting.",
            ),
            click.option(
                "--start",
                "start_s",
                type=float,
                default=0.0,
                show_default=True,
                help="Start of the clip in the file (seconds).",
            ),
            positive_option(
                "--duration",
                "duration_s",
                kind=float,
                help="Length to fit (seconds; default: to the end of the file).",
            ),
            click.option(
                "--channel",
                default="mix",
                show_default=True,
                callback=_channel,
                help="'mix' (mean of channels) or a 0-based channel number.",
            ),
            positive_option(
                "-t",
                "--max-time",
                "max_time_s",
                kind=float,
                limit=MAX_TIME_S,
                default=120.0,
                help="Wall-clock budget (seconds, at most one day) of "
                "reading, identification and training (identification that overruns it stops the command). "
                "Every 25 steps the parameters are checked against the engine's reference solver; only "
                "checked parameters become the kept model.",
            ),
            click.option("--steps", type=click.IntRange(min=0), help="Maximum optimiser steps."),
            click.option(
                "--target-snr",
                "target_snr_db",
                type=float,
                callback=_finite,
                help="Stop once the fit reaches this SNR (dB).",
            ),
            click.option(
                "--seed",
                type=click.IntRange(-(2**63), 2**63 - 1),
                default=0,
                show_default=True,
                help="Random seed.",
            ),
            device_option,
            fit_threads_option,
            click.option(
                "--latent-dim",
                default="256",
                show_default=True,
                callback=_latent_dim,
                help=f"Latent dimension d (even, at most {MAX_LATENT_DIM}): d/2 damped oscillators; "
                "'auto': chosen per clip by validation on held-back samples, at most --max-latent-dim.",
            ),
            click.option(
                "--max-latent-dim",
                type=click.IntRange(2, MAX_LATENT_DIM),
                default=256,
                show_default=True,
                help="Largest d that 'auto' may choose.",
            ),
            click.option(
                "--modes",
                type=click.Choice(["global", "local", "auto"]),
                default="global",
                show_default=True,
                help="global: one set of modes for the clip, a start state per segment; local: modes "
                "identified at nodes 10-40 ms apart (the spacing chosen on held-back samples) and tracked, "
                "so they follow the notes (docs/music_capacity.md); "
                "auto: local if, trained, it reconstructs the clip better than the global start.",
            ),
            click.option(
                "--hop",
                "hop_samples",
                type=click.IntRange(8, MAX_HOP_SAMPLES),
                default=256,
                show_default=True,
                help="Segment hop (samples at the fitting rate); each segment has its own start state.",
            ),
            click.option(
                "--overlap",
                "overlap_samples",
                type=click.IntRange(0, MAX_HOP_SAMPLES),
                default=32,
                show_default=True,
                help="Cross-fade between segments (samples).",
            ),
            click.option(
                "--hidden",
                type=click.IntRange(1, MAX_HIDDEN),
                default=64,
                show_default=True,
                help="Width of the correction MLP.",
            ),
            click.option(
                "--lp-order",
                type=click.IntRange(2, MAX_LP_ORDER),
                default=1024,
                show_default=True,
                help="Order of the linear predictor whose poles are the candidate oscillators.",
            ),
            click.option(
                "--continuation-samples",
                type=click.IntRange(0, MAX_CONTINUATION_SAMPLES),
                default=None,
                help="Last samples that fix the state of the continuation ODE. Default: chosen, with "
                "its order, by validation on the clip's last 50 ms. 0: the last segment continues.",
            ),
            click.option(
                "--continuation-steps",
                type=click.IntRange(min=0),
                default=0,
                show_default=True,
                help="Deprecated, no effect: the continuation state is now fitted in closed form.",
            ),
            click.option(
                "--continuation-training-steps",
                type=click.IntRange(min=0),
                default=30,
                show_default=True,
                help="Adjoint steps that train the continuation's field for prediction (kept only if the "
                "clip's held-back last 0.2 s is predicted better) before its limit cycle is chosen; "
                "0: the continuation is the identified linear ODE.",
            ),
            click.option(
                "--batch-segments",
                type=click.IntRange(2, MAX_BATCH_SEGMENTS),
                default=None,
                help="Segments per optimiser step; longer clips train on a sample of this many spread "
                "over the clip (memory and step time independent of the clip's length). Default: 256 (the whole "
                "clip) up to 256 segments, fewer on longer clips so the step's memory stays bounded "
                "(85 at d = 256, hop 256).",
            ),
            click.option(
                "--gradient",
                type=click.Choice(["adjoint", "backprop"]),
                default="adjoint",
                show_default=True,
                help="How gradients are computed.",
            ),
            click.option(
                "--checkpoint-every",
                "checkpoint_every_s",
                type=click.FloatRange(min=0),
                default=30.0,
                show_default=True,
                help="Seconds between resumable checkpoints (<model>.ckpt, deleted "
                "when the fit completes); a crash loses at most this much training. 0: none.",
            ),
            click.option(
                "--resume",
                is_flag=True,
                help="Continue the interrupted fit saved in <model>.ckpt (same "
                "clip and options; --max-time, --steps and --target-snr may change).",
            ),
            quiet_option,
            force_option,
        ]
    ):
        f = decorator(f)
    return f
