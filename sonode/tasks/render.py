"""Reading a fitted model as audio: any span, any rate, and continuation past the clip's end."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sonode.dsp.grid import as_whole_rate, n_samples
from sonode.model.decoder import SonodeModel
from sonode.model.device import moved, resolve_device

# A free run is stopped when it leaves ±BLOWUP_FACTOR × the clip's peak (normalised peak = 1):
# real continuations of the sounds sonode models decay or hold their level.
BLOWUP_FACTOR = 10.0


@dataclass
class Rendering:
    """Samples of a render and what happened.

    Attributes:
        samples: float64 (n_samples,), file amplitude; finite.
        sample_rate: Hz.
        start_s: model time of samples[0] (0 = first sample of the fitted span).
        stopped_at_s: model time where a diverging free run was cut (samples end there), else None.
    """

    samples: np.ndarray
    sample_rate: int
    start_s: float
    stopped_at_s: float | None = None


def n_output_samples(duration_s: float, rate: int) -> int:
    """round(duration_s · rate), halves up: the exact length of every render (`sonode.dsp.grid`)."""
    return n_samples(duration_s, rate)


#: Peak bytes per output sample of `render` beyond the loaded model (measured at 768 kHz and 50 MHz
#: on a 0.5 s model: 36 and 84 B; rounded up). The budget also holds the process itself.
RENDER_BYTES_PER_OUTPUT_SAMPLE = 96


def check_render_size(start_s: float, end_s: float, rate: int, clip_rate: int) -> None:
    """Refuse, before any work, a span or rate whose render would not fit (`sonode.limits`).

    Raises:
        sonode.limits.LimitError: one line with the value and the limit.
    """
    from sonode.limits import (
        MAX_OUTPUT_RATE_HZ,
        MAX_RENDER_S,
        check_finite,
        check_limit,
        check_memory,
    )

    check_finite("end", end_s, "give a finite end in seconds")
    check_limit("span", end_s - start_s, MAX_RENDER_S, "render a shorter span", " s")
    check_limit("output rate", rate, MAX_OUTPUT_RATE_HZ, "choose a lower --rate", " Hz")
    factor = (
        -(-clip_rate // rate) if rate < clip_rate else 1
    )  # renders below the clip's rate run finer
    n = n_output_samples(end_s - start_s, factor * rate)
    check_memory(
        f"rendering {n} samples at {factor * rate} Hz",
        n * RENDER_BYTES_PER_OUTPUT_SAMPLE,
        "render a shorter span or at a lower rate",
    )


def render(
    model: SonodeModel,
    rate: int | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    texture: float | str = 0.0,
    seed: int = 0,
    device: str = "cpu",
) -> Rendering:
    """The model's signal on [start_s, end_s) at ``rate`` Hz.

    Args:
        model: a fitted model.
        rate: output sample rate in Hz (default: the fitted clip's rate).
        start_s: start in seconds of model time (≥ 0; 0 is the first fitted sample).
        end_s: end in seconds (default: the end of the fitted span); past it the last segment's
            trajectory is continued (extrapolation).
        progress: called as progress(done, total) in segments.
        texture: past the fitted span, add the continuation's stochastic part at this amplitude
            (`sonode.model.texture`: the power its mean lost, as shaped noise; 1 restores the
            clip's level and spectrum, 0 leaves the mean alone, bit for bit), or "auto": the
            amplitude the fit chose for this clip on its held-back end and stored in the model
            (`sonode.model.texture_choice`; 0 in files written before the choice existed).
        seed: the texture's noise (the same seed gives the same samples).
        device: where the trajectories are solved ("auto" and "cpu": the CPU; "cuda": the GPU,
            in float64 like the CPU; a local-mode model renders on the CPU). The model is moved
            there for the render and back after; the texture and resampling run on the CPU.

    Returns:
        A `Rendering` of round((end_s − start_s)·rate) samples, sample j at start_s + j/rate, from
        the fast modal solver that training uses: at the clip's own rate this repeats the training
        solve (to ≈ −110 dB, the render's envelope tolerance); at any other rate the oscillators are
        exact and the envelope is read from the same solution. Below the clip's rate the trajectory
        is rendered at m·rate ≥ the clip's rate (m whole) and decimated by m with a band-limiting
        resampler (Kaiser-windowed sinc), so content above the new Nyquist frequency is removed
        instead of folding back into the band.

    Raises:
        ValueError: a negative start, an end before the start, or a rate that is not positive.
        sonode.model.device.DeviceError: ``device`` is "cuda" and there is no CUDA device.
    """
    config = model.config
    where = resolve_device(device) if isinstance(model, SonodeModel) else torch.device("cpu")
    rate = config.sample_rate if rate is None else as_whole_rate(rate, "rate")
    end_s = config.n_samples / config.sample_rate if end_s is None else float(end_s)
    if not start_s >= 0:
        raise ValueError(
            f"start must be ≥ 0 s (the model starts at the fitted span's first sample), got {start_s}"
        )
    if not end_s > start_s:
        raise ValueError(f"end ({end_s} s) must be after start ({start_s} s)")
    texture = texture_amplitude(model, texture)
    check_render_size(start_s, end_s, rate, config.sample_rate)
    if rate < config.sample_rate:
        return _render_band_limited(model, rate, start_s, end_s, progress, texture, seed, device)
    span_s = config.n_samples / config.sample_rate
    textured = texture > 0 and end_s > span_s and model.continuation_state.shape[0] > 0
    if textured and start_s > span_s:
        # the texture is drawn from the clip's end on: render from there on the same grid
        lead = int(math.floor((start_s - span_s) * rate + 1e-9))
        if lead > 0:
            full = render(
                model, rate, start_s - lead / rate, end_s, progress, texture, seed, device
            )
            return Rendering(full.samples[lead:], rate, start_s, full.stopped_at_s)
    n = n_output_samples(end_s - start_s, rate)
    times = start_s + torch.arange(n, dtype=torch.float64, device=where) / rate
    total = config.layout.n_segments
    with moved(model, where):
        x = model.render_normalised(
            times,
            bound=BLOWUP_FACTOR,
            progress=None if progress is None else (lambda done: progress(done, total)),
        )
    x, times = x.cpu(), times.cpu()  # (no copies on the CPU)
    stopped_at = float(times[x.numel()]) if x.numel() < n else None
    if textured:
        x = _add_texture(model, times[: x.numel()], x, rate, span_s, texture, seed)
    return Rendering(
        samples=model.denormalise(x), sample_rate=rate, start_s=start_s, stopped_at_s=stopped_at
    )


def texture_amplitude(model: SonodeModel, texture: float | str) -> float:
    """The texture amplitude ``texture`` asks of ``model``: a finite number ≥ 0 as given, or
    "auto", the one its fit stored (``config.continuation_texture``)."""
    if texture == "auto":
        return float(getattr(model.config, "continuation_texture", 0.0))
    if isinstance(texture, str) or not (texture >= 0 and math.isfinite(texture)):
        raise ValueError(f'texture must be a finite number ≥ 0 or "auto", got {texture!r}')
    return float(texture)


def _add_texture(model, times_s, x, rate: int, span_s: float, gain: float, seed: int):
    """x (n,) normalised with the texture (`sonode.model.texture`) added at the times ≥ span_s."""
    from sonode.model.texture import TextureModes, texture as draw

    first = int(torch.searchsorted(times_s, torch.tensor(span_s, dtype=torch.float64)))
    if first >= times_s.numel():
        return x
    # the mean as rendered (a view: its readout bias, a constant, touches only the lowest bin)
    mean = x[first:].detach().numpy()
    first_s = float(times_s[first]) - span_s
    noise = draw(TextureModes.from_model(model), mean, rate, first_s, seed=seed, gain=gain)
    x[first:] += torch.from_numpy(noise)  # in place: a render's memory is budgeted per sample
    return x


def _render_band_limited(
    model: SonodeModel,
    rate: int,
    start_s: float,
    end_s: float,
    progress: Callable[[int, int], None] | None,
    texture: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
) -> Rendering:
    """`render` below the clip's rate: render at m·rate ≥ clip rate, then decimate by m (a whole
    ratio keeps the resampler's polyphase kernel small for any rate; block-wise, so memory stays
    proportional to the output)."""
    from sonode.sinc import KAISER_BEST, resample_blocks

    factor = -(-model.config.sample_rate // rate)
    fine = render(model, factor * rate, start_s, end_s, progress, texture, seed, device)
    n = n_output_samples(end_s - start_s, rate)
    samples = resample_blocks(fine.samples, factor * rate, rate, **KAISER_BEST)[:n]
    if fine.stopped_at_s is None:
        samples = np.pad(samples, (0, n - samples.size))
    return Rendering(
        samples=samples, sample_rate=rate, start_s=start_s, stopped_at_s=fine.stopped_at_s
    )


def extrapolate(
    model: SonodeModel,
    seconds: float,
    rate: int | None = None,
    with_context: bool = False,
    progress: Callable[[int, int], None] | None = None,
    texture: float | str = 0.0,
    seed: int = 0,
    device: str = "cpu",
) -> Rendering:
    """Continue the sound past the fitted span by integrating the last segment's ODE onward.

    Args:
        model: a fitted model.
        seconds: length of the continuation (> 0).
        rate: output rate in Hz (default: the clip's).
        with_context: also include the reconstruction before the continuation (one seamless
            signal starting at model time 0).
        progress: as in `render`.
        texture, seed: the continuation's stochastic part, as in `render`.
        device: as in `render`.

    Returns:
        A `Rendering`; without context it starts at the fitted span's end, T = n_samples/clip rate.
    """
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a finite number > 0, got {seconds}")
    span_s = model.config.n_samples / model.config.sample_rate
    start = 0.0 if with_context else span_s
    return render(model, rate, start, span_s + seconds, progress, texture, seed, device)
