"""SonodeModel: a clip as the cross-faded trajectories of dz/dt = L z + N_θ(z), x = C z + b."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from sonode.errors import ModelFileError
from sonode.model.field import CorrectionField
from sonode.model.layout import SegmentLayout
from sonode.model.oscillator import OscillatorBank
from sonode.model_file import load_model_file, save_model_file
from sonode.ode import odeint, odeint_adjoint

MODEL_KIND = "sonode-decoder"
MODEL_VERSION = 1
GRADIENT_METHODS = ("adjoint", "backprop")


@dataclass(frozen=True)
class ModelConfig:
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
    continuation_samples: int = 0  # window of the continuation state (0: the last segment continues)

    @property
    def latent_dim(self) -> int:
        return 2 * self.n_modes

    @property
    def layout(self) -> SegmentLayout:
        return SegmentLayout(self.sample_rate, self.n_samples, self.hop_samples, self.overlap_samples)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def continuation_start_s(self) -> float:
        """Model time where the continuation state lives: continuation_samples before the end."""
        return (self.n_samples - self.continuation_samples) / self.sample_rate


class SonodeModel(nn.Module):
    """A fitted clip: segment start states, an oscillator bank, a neural correction and a readout.

    Time is in seconds from the first sample of the fitted span; amplitudes inside the model are
    normalised (see `ModelConfig.gain` / `offset`), and `render` undoes the normalisation.
    """

    def __init__(self, config: ModelConfig, bank: OscillatorBank, field: CorrectionField,
                 states: torch.Tensor, readout: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.bank = bank
        self.field = field
        d = config.latent_dim
        if states.shape != (config.layout.n_segments, d):
            raise ValueError(f"states must have shape {(config.layout.n_segments, d)}, got {tuple(states.shape)}")
        self.states = nn.Parameter(states.to(torch.float64).clone())
        if readout is None:  # x = Σ_k u_k: the modal coordinates' real parts
            readout = torch.cat([torch.ones(config.n_modes), torch.zeros(config.n_modes)])
        self.readout = nn.Parameter(readout.to(torch.float64).clone())
        self.readout_bias = nn.Parameter(torch.zeros((), dtype=torch.float64))
        # The state that continues the sound past the span, fitted on the clip's last
        # continuation_samples (see `sonode.model.train.fit_continuation`): a last segment alone
        # sees as few as overlap + 1 samples, too few to pin down d numbers for a free run.
        self.continuation_state = nn.Parameter(
            torch.zeros((1 if config.continuation_samples else 0, d), dtype=torch.float64))

    # ---- solving ---------------------------------------------------------------------------
    def solve(self, z0: torch.Tensor, local_s: torch.Tensor, step_s: float, gradient: str | None = None,
              checkpoint_every: int = 64) -> torch.Tensor:
        """Integrate states ``z0`` (B, d) from local time 0 and read them at ``local_s``.

        Args:
            z0: states at local time 0, shape (B, d).
            local_s: output times in seconds, shape (n,), increasing, local_s[0] == 0.
            step_s: largest Lawson RK4 step in seconds (output intervals are split to meet it).
            gradient: None (no graph), "adjoint" (checkpointed discrete adjoint of the engine),
                or "backprop" (autograd through the solver).
            checkpoint_every: adjoint checkpoint spacing in steps (memory vs recomputation).

        Returns:
            Trajectories, shape (n, B, d).
        """
        options = {"linear": self.bank, "step_size": step_s}
        if gradient is None:
            with torch.no_grad():
                return odeint(self.field, z0, local_s, method="lawson_rk4", options=options)
        if gradient == "adjoint":
            return odeint_adjoint(self.field, z0, local_s, method="lawson_rk4", options=options,
                                  adjoint_params=tuple(self.field.parameters()),
                                  adjoint_options={"mode": "checkpoint", "checkpoint_every": checkpoint_every})
        if gradient == "backprop":
            return odeint(self.field, z0, local_s, method="lawson_rk4", options=options)
        raise ValueError(f"gradient must be one of {GRADIENT_METHODS} or None, got {gradient!r}")

    def read(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised samples x = C z + b for states z (..., d) → (...)."""
        return z @ self.readout + self.readout_bias

    def reconstruct(self, gradient: str | None = None, substeps: int = 1,
                    extra_samples: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised reconstruction on the training grid, all segments in one batch.

        Args:
            gradient: as in `solve`.
            substeps: Lawson steps per sample (1 = the training solve; 8 = a fine solve).
            extra_samples: also integrate each segment this many samples past its window
                (free-run continuation used by the training loss).

        Returns:
            (signal (n_samples,), per-segment samples (window + extra, M)).
        """
        layout = self.config.layout
        n = layout.window_samples + extra_samples
        local = torch.arange(n, dtype=torch.float64) / layout.sample_rate
        z = self.solve(self.states, local, 1.0 / (layout.sample_rate * substeps), gradient)
        per_segment = self.read(z)  # (n, M)
        signal = layout.overlap_add(per_segment[: layout.window_samples] * layout.training_weights())
        return signal, per_segment

    # ---- rendering -------------------------------------------------------------------------
    @torch.no_grad()
    def render_normalised(self, times_s: torch.Tensor, max_step_s: float | None = None,
                          progress: Callable[[int], None] | None = None, bound: float = math.inf,
                          chunk_samples: int = 4096) -> torch.Tensor:
        """The continuous-time signal at uniformly spaced increasing times (normalised amplitude).

        Times past the fitted span continue the last segment's trajectory (extrapolation). That
        free run is integrated chunk by chunk and stops at the first sample that is not finite or
        exceeds ``bound`` in magnitude, so a diverging continuation costs nothing more.

        Args:
            times_s: float64 (n,), uniformly spaced, increasing, ≥ 0 (seconds).
            max_step_s: largest solver step; default one training sample (1/sample_rate), so a
                render at the clip's rate repeats the training solve exactly.
            progress: called with the number of segments finished, for progress bars.
            bound: largest |x| accepted (normalised amplitude).
            chunk_samples: outputs per chunk of the free run.

        Returns:
            float64 (n',) with n' ≤ n: all n samples, or those before the first bad one.
        """
        layout = self.config.layout
        step = max_step_s if max_step_s is not None else 1.0 / layout.sample_rate
        out = torch.zeros_like(times_s)
        if times_s.numel() == 0:
            return out
        spacing = float(times_s[1] - times_s[0]) if times_s.numel() > 1 else step
        starts = layout.start_s()
        last = layout.n_segments - 1
        groups: dict[tuple[float, int], list[tuple[int, torch.Tensor]]] = {}
        for m in range(last):
            idx = torch.nonzero(layout.weights(times_s - starts[m], torch.tensor(m)) > 0).flatten()
            if idx.numel():
                # segments whose output grid has the same offset and length share one batched solve
                key = (round(float(times_s[idx[0]] - starts[m]) / spacing, 9), int(idx.numel()))
                groups.setdefault(key, []).append((m, idx))
        done = 0
        for (offset_steps, count), members in groups.items():
            seg = torch.tensor([m for m, _ in members])
            z = self.solve(self.states[seg], _local_grid(offset_steps * spacing, spacing, count), step)
            x = self.read(z[-count:])  # (count, G)
            for g, (m, idx) in enumerate(members):
                out[idx] += layout.weights(times_s[idx] - starts[m], torch.tensor(m)) * x[:, g]
            done += len(members)
            if progress is not None:
                progress(done)
        n_good = _first_bad(out, bound, times_s.numel())
        span_end = self.config.duration_s
        fade_s = self.config.overlap_samples / layout.sample_rate
        if self.config.continuation_samples:
            # the last segment hands over to the continuation state over `fade_s` after the span
            handover = 0.5 + 0.5 * torch.cos(math.pi * torch.clamp((times_s - span_end) / max(fade_s, 1e-12), 0, 1))
            last_end = span_end + fade_s
        else:
            handover, last_end = torch.ones_like(times_s), math.inf
        last_idx = torch.nonzero((times_s >= starts[last]) & (times_s < last_end)).flatten()
        last_w = layout.weights(times_s - starts[last], torch.tensor(last)) * handover
        n_good = self._free_run(self.states[last:], float(starts[last]), times_s, last_idx, last_w, out,
                                n_good, bound, step, spacing, chunk_samples)
        if self.config.continuation_samples:
            cont_idx = torch.nonzero(times_s >= span_end).flatten()
            n_good = self._free_run(self.continuation_state, self.config.continuation_start_s, times_s, cont_idx,
                                    1.0 - handover, out, n_good, bound, step, spacing, chunk_samples)
        if progress is not None:
            progress(layout.n_segments)
        return out[:n_good]

    def _free_run(self, z0: torch.Tensor, start_s: float, times_s: torch.Tensor, idx: torch.Tensor,
                  weights: torch.Tensor, out: torch.Tensor, n_good: int, bound: float, step: float,
                  spacing: float, chunk_samples: int) -> int:
        """Add the weighted trajectory from state z0 (1, d) at model time start_s to out[idx].

        Integrates chunk by chunk and stops at the first output that is non-finite or beyond
        ``bound``; returns the updated count of good leading samples.
        """
        if idx.numel() == 0:
            return n_good
        offset, z = float(times_s[idx[0]]) - start_s, z0
        for begin in range(0, int(idx.numel()), chunk_samples):
            chunk = idx[begin: begin + chunk_samples]
            if int(chunk[0]) >= n_good:
                break
            try:
                traj = self.solve(z, _local_grid(offset, spacing, chunk.numel()), step)
            except RuntimeError:  # the engine refuses non-finite states: the free run ends here
                return min(n_good, int(chunk[0]))
            out[chunk] += weights[chunk] * self.read(traj[-chunk.numel():, 0])
            n_good = min(n_good, _first_bad(out, bound, int(chunk[-1]) + 1, int(chunk[0])))
            z, offset = traj[-1], spacing  # continue from the chunk's last output
        return n_good

    def denormalise(self, x: torch.Tensor) -> np.ndarray:
        """Normalised samples → file amplitude (numpy float64)."""
        return (x * self.config.gain + self.config.offset).cpu().numpy()

    # ---- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
        """Write the model atomically as a code-free, versioned file (tensors + JSON metadata)."""
        tensors = {name: p.detach() for name, p in self.state_dict().items()}
        save_model_file(path, tensors, {"config": asdict(self.config), "info": info or {}},
                        kind=MODEL_KIND, version=MODEL_VERSION)

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple["SonodeModel", dict[str, Any]]:
        """Read a model file (never executes code from it). Returns (model, info)."""
        tensors, meta = load_model_file(path, kind=MODEL_KIND, supported_versions=[MODEL_VERSION])
        config = _config_from_meta(path, meta)
        model = build_model(config, torch.zeros(config.n_modes, dtype=torch.float64),
                            torch.ones(config.n_modes, dtype=torch.float64),
                            torch.zeros(config.layout.n_segments, config.latent_dim, dtype=torch.float64),
                            state_scale=1.0, rate_scale=1.0)
        expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        found = {name: tuple(t.shape) for name, t in tensors.items()}
        if expected != found:
            bad = sorted(set(expected.items()) ^ set(found.items()))
            raise ModelFileError(f"{path}: tensors do not match the model's configuration ({bad[:3]}...); "
                                 "the file is damaged or was edited — refit the clip")
        model.load_state_dict(tensors)
        return model, meta.get("info", {})


def _local_grid(first_s: float, spacing_s: float, count: int) -> torch.Tensor:
    """Solver times: 0, then ``count`` outputs first_s + j·spacing_s (0 itself when first_s == 0)."""
    grid = first_s + spacing_s * torch.arange(count, dtype=torch.float64)
    return grid if first_s == 0.0 else torch.cat([torch.zeros(1, dtype=torch.float64), grid])


def _first_bad(x: torch.Tensor, bound: float, end: int, begin: int = 0) -> int:
    """Index of the first sample in x[begin:end] that is non-finite or beyond ±bound, else len(x)."""
    bad = ~torch.isfinite(x[begin:end]) | (x[begin:end].abs() > bound)
    return begin + int(torch.nonzero(bad)[0]) if bool(bad.any()) else int(x.numel())


def build_model(config: ModelConfig, decay_per_s: torch.Tensor, omega_rad_per_s: torch.Tensor,
                states: torch.Tensor, state_scale: float, rate_scale: float) -> SonodeModel:
    """Assemble a model from identified modes (K,) and initial segment states (M, 2K)."""
    bank = OscillatorBank(decay_per_s, omega_rad_per_s)
    field = CorrectionField(config.latent_dim, config.hidden, config.layers, state_scale, rate_scale)
    return SonodeModel(config, bank, field, states)


def _config_from_meta(path, meta: dict[str, Any]) -> ModelConfig:
    try:
        raw = meta["config"]
        config = ModelConfig(**{f: type_(raw[f]) for f, type_ in _CONFIG_TYPES.items()})
        if not (8000 <= config.sample_rate <= 192000 and config.n_samples > 0 and config.n_modes > 0
                and config.hidden > 0 and config.layers > 0 and math.isfinite(config.gain)
                and config.gain > 0 and math.isfinite(config.offset)
                and 0 <= config.continuation_samples <= config.n_samples):
            raise ValueError("values out of range")
        config.layout  # validates hop/overlap
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: the model configuration is missing or invalid ({err}); "
                             "the file is damaged or not a sonode model — refit the clip") from None
    return config


_CONFIG_TYPES = {"sample_rate": int, "n_samples": int, "hop_samples": int, "overlap_samples": int,
                 "n_modes": int, "hidden": int, "layers": int, "gain": float, "offset": float,
                 "continuation_samples": int}
