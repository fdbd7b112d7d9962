"""SonodeModel: a clip as the cross-faded trajectories of dz/dt = L z + N_θ(z), x = C z + b."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from sonode.errors import ModelFileError
from sonode.io.model_file import load_model_file, save_model_file
from sonode.model.config import MODEL_KIND, MODEL_VERSION, ModelConfig, config_from_meta
from sonode.model.continuation_parts import ContinuationMixin, legacy_continuation_tensors
from sonode.model.device import on
from sonode.model.field import ModalField
from sonode.model.fit_size import EVALUATION_SEGMENTS
from sonode.model.limit_cycle import CycledField, HeldModes, LimitCycle
from sonode.model.local import LOCAL_VERSIONS, LocalModel
from sonode.model.modal import modal_readout, modal_solve
from sonode.model.oscillator import OscillatorBank
from sonode.model.rendering import render_normalised
from sonode.ode import odeint, odeint_adjoint

__all__ = [
    "GRADIENT_METHODS",
    "MODEL_KIND",
    "MODEL_VERSION",
    "ModelConfig",
    "SonodeModel",
    "build_model",
]

GRADIENT_METHODS = ("adjoint", "backprop")


class SonodeModel(ContinuationMixin, nn.Module):
    """A fitted clip: segment start states, an oscillator bank, a neural correction and a readout.

    Time is in seconds from the first sample of the fitted span; amplitudes inside the model are
    normalised (see `ModelConfig.gain` / `offset`), and `render` undoes the normalisation.
    """

    def __init__(
        self,
        config: ModelConfig,
        bank: OscillatorBank,
        field: ModalField,
        states: torch.Tensor,
        readout: torch.Tensor | None = None,
    ):
        super().__init__()
        self.config = config
        self.bank = bank
        self.field = field
        d = config.latent_dim
        if states.shape != (config.layout.n_segments, d):
            raise ValueError(
                f"states must have shape {(config.layout.n_segments, d)}, got {tuple(states.shape)}"
            )
        self.states = nn.Parameter(states.to(torch.float64).clone())
        if readout is None:  # x = Σ_k u_k: the modal coordinates' real parts
            readout = torch.cat([torch.ones(config.n_modes), torch.zeros(config.n_modes)])
        self.readout = nn.Parameter(readout.to(torch.float64).clone())
        self.readout_bias = nn.Parameter(torch.zeros((), dtype=torch.float64))
        # The first state of one trajectory through the clip: its free run under the learned
        # dynamics is the model of the sound without restarts (trained on the first
        # TRAJECTORY_S); the segment states refine it locally.
        self.trajectory_state = nn.Parameter(torch.zeros((1, d), dtype=torch.float64))
        # ...and, for a held note, a limit cycle on its modes (`sonode.model.trajectory_cycle`:
        # chosen per clip by validation), so that the free run holds an attracting orbit; off, the
        # trajectory is the model's ODE exactly
        self.trajectory_cycle = LimitCycle(config.n_modes)
        # What continues the sound past the span (see `sonode.model.continuation_parts`): an ODE
        # whose modes are identified on the clip's end; a last segment alone sees as few as
        # overlap + 1 samples.
        self._init_continuation(config.tail_modes if config.continuation_samples else 0)

    # ---- solving ---------------------------------------------------------------------------
    def solve(
        self,
        z0: torch.Tensor,
        local_s: torch.Tensor,
        step_s: float | None = None,
        gradient: str | None = None,
        checkpoint_every: int = 64,
    ) -> torch.Tensor:
        """Integrate states ``z0`` (B, d) from local time 0 and read them at ``local_s``.

        Args:
            z0: states at local time 0, shape (B, d).
            local_s: output times in seconds, shape (n,), monotone, local_s[0] == 0 (decreasing
                times integrate backward).
            step_s: None for the fast modal solver (exact oscillation, adaptive envelope; see
                `sonode.model.modal`); a number solves the same ODE with the engine's Lawson RK4
                at that largest step instead — the reference the fast solver is checked against.
            gradient: None (no graph), "adjoint" (the engine's checkpointed adjoint) or
                "backprop" (autograd through the solver).
            checkpoint_every: adjoint checkpoint spacing of the reference solver, in steps.

        Returns:
            Trajectories, shape (n, B, d).
        """
        if gradient is not None and gradient not in GRADIENT_METHODS:
            raise ValueError(
                f"gradient must be one of {GRADIENT_METHODS} or None, got {gradient!r}"
            )
        if step_s is None:
            return modal_solve(self.bank, self.field, z0, local_s, gradient)
        # grid="outputs": steps of at most step_s cut at every output time (the engine's own grid,
        # which this reference solver has always used; the default is torchdiffeq's uniform grid)
        options = {"linear": self.bank, "step_size": step_s, "grid": "outputs"}
        if gradient is None:
            with torch.no_grad():
                return odeint(self.field, z0, local_s, method="lawson_rk4", options=options)
        if gradient == "adjoint":
            return odeint_adjoint(
                self.field,
                z0,
                local_s,
                method="lawson_rk4",
                options=options,
                adjoint_params=tuple(self.field.parameters()),
                adjoint_options={"mode": "checkpoint", "checkpoint_every": checkpoint_every},
            )
        return odeint(self.field, z0, local_s, method="lawson_rk4", options=options)

    def trajectory(
        self, n_samples: int, gradient: str | None = None, stride: int = 1, phase: int = 0
    ) -> torch.Tensor:
        """Normalised samples phase, phase + stride, ... < n_samples of the free run from
        ``trajectory_state`` (one trajectory through the clip): (ceil((n_samples − phase)/stride),)."""
        like = on(self.trajectory_state)  # the model's device and dtype
        index = torch.arange(phase, n_samples, stride, **like)
        local = torch.cat([torch.zeros(1, **like), index / self.config.sample_rate])
        bank, field = self.trajectory_ode()
        x = modal_readout(bank, field, self.trajectory_state, local, self.readout, gradient)[:, 0]
        return x[1:] + self.readout_bias

    def trajectory_ode(self) -> tuple[nn.Module | HeldModes, nn.Module]:
        """The one trajectory's (bank, field): the model's, or, when its limit cycle is on, the
        cycle's member modes neutral (`HeldModes`) and the cycle added to the field."""
        cycle = self.trajectory_cycle
        if cycle.active:
            return HeldModes(self.bank, cycle.member > 0), CycledField(self.field, cycle)
        return self.bank, self.field

    def read(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised samples x = C z + b for states z (..., d) → (...)."""
        return z @ self.readout + self.readout_bias

    def reconstruct(
        self,
        gradient: str | None = None,
        substeps: int | None = None,
        segments: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised reconstruction on the training grid, segments solved as one batch.

        Args:
            gradient: as in `solve`.
            substeps: None for the fast modal solver (the training solve); k for the reference
                Lawson RK4 solve with k steps per sample (8 = the discretisation check's fine solve).
            segments: indices of a contiguous run of segments to solve (a minibatch); None for all.

        Returns:
            (signal, per-segment samples (window_samples, B)). The signal covers the samples the
            chosen segments reach, [start of the first, end of the last window) clipped to the clip;
            samples also reached by a segment outside the run are incomplete there (see
            `SegmentLayout.covered`).
        """
        layout = self.config.layout
        like = on(self.states)
        local = torch.arange(layout.window_samples, **like) / layout.sample_rate
        states = self.states if segments is None else self.states[segments]
        first = 0 if segments is None else int(segments[0])

        def solved(part: torch.Tensor) -> torch.Tensor:  # (window_samples, len(part))
            if substeps is None:
                x = modal_readout(self.bank, self.field, part, local, self.readout, gradient)
                return x + self.readout_bias
            step_s = 1.0 / (layout.sample_rate * substeps)
            return self.read(self.solve(part, local, step_s, gradient))

        def weights(begin: int, end: int) -> torch.Tensor:  # of the run's segments begin..end-1
            run = torch.arange(first + begin, first + end, device=like["device"])
            return layout.training_weights(run, like["dtype"])

        if gradient is not None:  # one graph: the caller chooses the run (`segments`)
            per_segment = solved(states)
            return layout.overlap_add(per_segment * weights(0, states.shape[0]), first), per_segment
        # Without a gradient the segments are solved and overlap-added a run at a time: memory then
        # does not grow with the clip beyond the output (the whole clip's weighted copy and
        # overlap-add index, ~4 arrays of window × segments, took a 600 s 16 kHz fit from 1.1 to
        # 1.6 GiB). The sum is the same (bit for bit while at most two windows overlap a sample,
        # overlap ≤ hop: two terms add the same in either order).
        m, hop = states.shape[0], layout.hop_samples
        per_segment = torch.empty(layout.window_samples, m, **like)
        # the span `overlap_add` covers: the first window's start to the last one's end
        span = min(layout.n_samples, (first + m - 1) * hop + layout.window_samples) - first * hop
        signal = torch.zeros(span, **like)
        with torch.no_grad():
            for begin in range(0, m, EVALUATION_SEGMENTS):
                end = min(begin + EVALUATION_SEGMENTS, m)
                per_segment[:, begin:end] = solved(states[begin:end])
                piece = layout.overlap_add(
                    per_segment[:, begin:end] * weights(begin, end), first + begin
                )
                signal[begin * hop : begin * hop + piece.shape[0]] += piece
        return signal, per_segment

    def defects(
        self,
        gradient: str | None = None,
        segments: torch.Tensor | slice | None = None,
        ends: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Continuity defects z_m(hop) − z_{m+1}(0) between consecutive segments, (B − 1, d).

        Zero defects make the segment states samples of one trajectory (multiple shooting).
        ``ends``: the B segments' states at the hop, (B, d), when a solve already gave them (a
        training step's read-out, `modal_readout`'s end_s); else they are solved here."""
        layout = self.config.layout
        states = self.states if segments is None else self.states[segments]
        if ends is None:
            hop_s = layout.hop_samples / layout.sample_rate
            times = torch.tensor([0.0, hop_s], **on(states))
            ends = modal_solve(self.bank, self.field, states[:-1], times, gradient)[-1]
        else:
            ends = ends[:-1]
        return ends - states[1:]

    # ---- rendering -------------------------------------------------------------------------
    @torch.no_grad()
    def render_normalised(
        self,
        times_s: torch.Tensor,
        max_step_s: float | None = None,
        progress: Callable[[int], None] | None = None,
        bound: float = math.inf,
        chunk_samples: int = 8192,
    ) -> torch.Tensor:
        """The continuous-time signal at uniformly spaced increasing times (normalised amplitude).

        Times past the fitted span continue the last segment's trajectory, handed over to the
        continuation ODE (extrapolation). Free runs are integrated chunk by chunk and stop at the
        first sample that is not finite or exceeds ``bound`` in magnitude. See
        `sonode.model.rendering`.

        Args:
            times_s: float64 (n,), uniformly spaced, increasing, ≥ 0 (seconds).
            max_step_s: None (default) for the fast modal solver, whose envelope solve is training's
                (to a looser tolerance), so a render at the clip's rate repeats the training solve to
                ≈ −110 dB; a number for the reference Lawson RK4 solver with that largest step.
            progress: called with the number of segments finished, for progress bars.
            bound: largest |x| accepted (normalised amplitude).
            chunk_samples: outputs per free-run chunk (bounds memory for long renders).

        Returns:
            float64 (n',) with n' ≤ n: all n samples, or those before the first bad one.
        """
        return render_normalised(self, times_s, max_step_s, progress, bound, chunk_samples)

    def denormalise(self, x: torch.Tensor) -> np.ndarray:
        """Normalised samples → file amplitude (numpy float64)."""
        return (x * self.config.gain + self.config.offset).cpu().numpy()

    # ---- persistence -----------------------------------------------------------------------
    def save(self, path: str | os.PathLike, info: dict[str, Any] | None = None) -> None:
        """Write the model atomically as a code-free, versioned file (tensors + JSON metadata)."""
        tensors = {name: p.detach() for name, p in self.state_dict().items()}
        save_model_file(
            path,
            tensors,
            {"config": asdict(self.config), "info": info or {}},
            kind=MODEL_KIND,
            version=MODEL_VERSION,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple[SonodeModel | LocalModel, dict[str, Any]]:
        """Read a model file (never executes code from it). Returns (model, info); a file of the
        local-mode variant (`sonode.model.local`) gives a `LocalModel`."""
        tensors, meta = load_model_file(
            path, kind=MODEL_KIND, supported_versions=[MODEL_VERSION, *LOCAL_VERSIONS]
        )
        if meta.get("variant") == LocalModel.variant:  # modes that follow the notes
            return LocalModel.from_file(path, tensors, meta)
        config = config_from_meta(path, meta)
        model = build_model(
            config,
            torch.zeros(config.n_modes, dtype=torch.float64),
            torch.ones(config.n_modes, dtype=torch.float64),
            torch.zeros(config.layout.n_segments, config.latent_dim, dtype=torch.float64),
            energy_scale=1.0,
            rate_scale=1.0,
        )
        expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        legacy_continuation_tensors(tensors, model.state_dict())
        for name, fresh in model.state_dict().items():  # files from before the trajectory's cycle
            if name.startswith("trajectory_cycle."):
                tensors.setdefault(name, fresh)
        found = {name: tuple(t.shape) for name, t in tensors.items()}
        if expected != found:
            bad = sorted(set(expected.items()) ^ set(found.items()))
            raise ModelFileError(
                f"{path}: tensors do not match the model's configuration ({bad[:3]}...); "
                "the file is damaged or was edited — refit the clip"
            )
        model.load_state_dict(tensors)
        return model, meta.get("info", {})


def build_model(
    config: ModelConfig,
    decay_per_s: torch.Tensor,
    omega_rad_per_s: torch.Tensor,
    states: torch.Tensor,
    energy_scale: float,
    rate_scale: float,
) -> SonodeModel:
    """Assemble a model from identified modes (K,) and initial segment states (M, 2K).

    ``energy_scale`` (typical mode energy) and ``rate_scale`` (1/s) set the field's units, see
    `ModalField`."""
    bank = OscillatorBank(decay_per_s, omega_rad_per_s)
    field = ModalField(config.n_modes, config.hidden, config.layers, energy_scale, rate_scale)
    return SonodeModel(config, bank, field, states)
