"""LocalModel: a clip as modes that follow the notes — dc_k/dt = λ_k(t)·c_k, x = Σ_k Re c_k.

The global decoder (`sonode.model.decoder`) has one set of modes for the whole clip and a free
start state per segment. Here every mode lives on its own track of nodes (t_f = f·hop/rate): a
frequency and a complex state per node, the trajectory between nodes the exact solution of the
time-varying linear ODE (`sonode.model.local_synthesis`). Modes start, glide and stop; the node
states are values of one continuous trajectory, not restarts. Past the span the continuation ODE
takes over, as for the global model (`sonode.model.rendering.add_continuation`).
"""

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
from sonode.io.model_file import save_model_file
from sonode.model.config import MODEL_KIND
from sonode.model.continuation_parts import ContinuationMixin, legacy_continuation_tensors
from sonode.model.local_codec import CODEC, encode
from sonode.model.local_file import (
    PACKED_INFO,
    LocalConfig,
    local_config_from_meta,
    pack_extras,
    read_packed_tables,
    table_problem,
    unpack_extras,
)
from sonode.model.local_synthesis import Pieces, interval_samples, piece_values
from sonode.model.rendering import add_continuation, first_bad_sample

# model file versions of the local variant (version 2: the global decoder): 3 holds float node
# tables, 4 the compact ones of `sonode.model.local_codec`, 5 those with the continuation and the
# fit report compressed (`sonode.model.local_file.pack_extras`); compact tables are written in
# version 5, float ones in 3, and all three are read
LOCAL_FLOAT_VERSION = 3
LOCAL_VERSION = 5
LOCAL_VERSIONS = (LOCAL_FLOAT_VERSION, 4, LOCAL_VERSION)
_TABLES = ("track_first", "track_length", "freq_hz", "amp_re", "amp_im")
_CONTINUATION = ("continuation", "tail_")
# pieces × samples per batched evaluation: ~8 MB per temporary (a dozen live at once), so the
# memory of reading or rendering does not grow with the rate, the modes or the clip
EVALUATION_ELEMENTS = 1 << 20


class LocalModel(ContinuationMixin, nn.Module):
    """Tracks of nodes: ``track_first`` (K,) / ``track_length`` (K,) say where each mode lives;
    ``freq_hz``, ``amp_re``, ``amp_im`` (P,) are its node frequencies and states, track after
    track. Amplitudes are normalised (see `LocalConfig.gain`); `denormalise` undoes it."""

    variant = "local"

    def __init__(
        self,
        config: LocalConfig,
        first: np.ndarray,
        length: np.ndarray,
        freq_hz: np.ndarray,
        amp_re: np.ndarray,
        amp_im: np.ndarray,
    ):
        super().__init__()
        self.config = config
        self.register_buffer("track_first", torch.as_tensor(first, dtype=torch.int64))
        self.register_buffer("track_length", torch.as_tensor(length, dtype=torch.int64))
        self.freq_hz = nn.Parameter(torch.as_tensor(freq_hz, dtype=torch.float64).clone())
        self.amp_re = nn.Parameter(torch.as_tensor(amp_re, dtype=torch.float64).clone())
        self.amp_im = nn.Parameter(torch.as_tensor(amp_im, dtype=torch.float64).clone())
        self.register_buffer("readout_bias", torch.zeros((), dtype=torch.float64))
        # precision of the node tables in a model file (`sonode.model.local_fit` chooses it)
        self.storage = "float32"  # or "float64", or "quantised" at ``steps``
        self.steps: tuple[float, float] | None = None  # (freq_step_hz, state_step)
        self.freq_shifts: np.ndarray | None = None  # (K,) track k's step is 2^shift·freq_step_hz
        # (K,) bool, the tracks whose states are coded after prediction (None: chosen on saving);
        # kept from the rounding or the file, so that saving codes exactly the values held
        self.predict_flags: np.ndarray | None = None
        # the continuation's tensors hold float32 values (`round_continuation`): stored so
        self.continuation_float32 = False
        self._init_continuation(config.tail_modes if config.continuation_samples else 0)
        self.pieces = Pieces.build(
            np.asarray(first, dtype=np.int64), np.asarray(length, dtype=np.int64), config.n_nodes
        )

    @property
    def n_tracks(self) -> int:
        return int(self.track_first.numel())

    @property
    def n_entries(self) -> int:
        return int(self.freq_hz.numel())

    def stored_numbers(self) -> int:
        """Numbers a model file holds: 3 per node entry, 2 per track, the continuation's tensors."""
        tail = sum(
            t.numel()
            for n, t in self.state_dict().items()
            if n.startswith(("tail_", "continuation"))
        )
        return 3 * self.n_entries + 2 * self.n_tracks + tail

    def entry_nodes(self) -> torch.Tensor:
        """(P,) the node of every entry."""
        offset = torch.cumsum(self.track_length, 0) - self.track_length
        base = torch.repeat_interleave(self.track_first - offset, self.track_length)
        return base + torch.arange(self.n_entries)

    # ---- reading ---------------------------------------------------------------------------
    def _runs(self, first: int, last: int, samples_per_interval: int):
        """Runs (a, b) of intervals first..last−1 whose pieces × samples_per_interval stay
        within EVALUATION_ELEMENTS (one interval at least)."""
        start = self.pieces.start
        most = max(1, EVALUATION_ELEMENTS // max(1, samples_per_interval))
        a = first
        while a < last:
            b = int(torch.searchsorted(start, start[a] + most, right=True)) - 1
            b = min(max(b, a + 1), last)
            yield a, b
            a = b

    def samples(self, first: int = 0, last: int | None = None) -> torch.Tensor:
        """The normalised signal on the clip's grid over intervals first..last−1 (differentiable):
        ((last − first)·hop,), samples past the clip included."""
        last = self.config.n_nodes - 1 if last is None else last
        hop, rate = self.config.hop_samples, self.config.sample_rate
        parts = [
            interval_samples(self.pieces, self.freq_hz, self.amp_re, self.amp_im, a, b, hop, rate)
            for a, b in self._runs(first, last, hop)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def reconstruct(self) -> torch.Tensor:
        """The normalised reconstruction on the clip's grid, (n_samples,), without a graph."""
        with torch.no_grad():
            out = self.samples()[: self.config.n_samples]
            if out.numel() < self.config.n_samples:  # the last sample sits on the last node
                at_last = self.entry_nodes() == self.config.n_nodes - 1
                out = torch.cat([out, self.amp_re[at_last].sum().reshape(1)])
            return out

    def trajectory(
        self, n_samples: int, gradient: str | None = None, stride: int = 1, phase: int = 0
    ) -> torch.Tensor:
        """Samples phase, phase + stride, ... < n_samples of the model's one trajectory (it has no
        restarts: this is the reconstruction itself), normalised."""
        times = torch.arange(phase, n_samples, stride, dtype=torch.float64)
        return self.render_normalised(times / self.config.sample_rate)

    @torch.no_grad()
    def render_normalised(
        self,
        times_s: torch.Tensor,
        max_step_s: float | None = None,
        progress: Callable[[int], None] | None = None,
        bound: float = math.inf,
        chunk_samples: int = 8192,
    ) -> torch.Tensor:
        """The continuous-time signal at uniformly spaced increasing times ≥ 0 (normalised).

        Inside the span the solution is exact at any time (``max_step_s`` applies to the
        continuation's reference solve only); past it the continuation ODE runs free, or, without
        one, the modes alive at the last node fall silent. Stops at the first sample that is not
        finite or exceeds ``bound``. Returns float64 (n',), n' ≤ n.
        """
        config = self.config
        out = torch.zeros_like(times_s)
        n = times_s.numel()
        if n == 0:
            return out
        spacing = float(times_s[1] - times_s[0]) if n > 1 else 1.0 / config.sample_rate
        has_tail = self.continuation_state.shape[0] > 0
        interval_s = config.hop_samples / config.sample_rate
        position = times_s / interval_s
        # a time on the last node (when hop divides n − 1) is the end of the last interval
        index = torch.floor(position).long().clamp(max=config.n_nodes - 2)
        inside = (times_s < config.duration_s) & (position <= config.n_nodes - 1)
        n_int = config.n_nodes - 1
        bounds = torch.searchsorted(index[inside].contiguous(), torch.arange(n_int + 1))
        fraction = (position - index)[inside]
        for a, b in self._runs(0, n_int, math.ceil(interval_s / spacing) + 1):
            counts = bounds[a + 1 : b + 1] - bounds[a:b]
            if int(counts.sum()) == 0:
                continue
            which = self.pieces.of_intervals(a, b)
            local = self.pieces.interval[which] - a
            columns = torch.arange(int(counts.max()))
            rows = bounds[a:b][local][:, None] + columns  # (Q, m) sample indices
            valid = columns[None, :] < counts[local][:, None]
            rows = torch.where(valid, rows, bounds[a:b][local][:, None])
            values = piece_values(
                self.pieces,
                which,
                self.freq_hz,
                self.amp_re,
                self.amp_im,
                fraction[rows.clamp(max=max(fraction.numel() - 1, 0))],
                interval_s,
            )
            target = torch.nonzero(inside).flatten()[rows.clamp(max=max(fraction.numel() - 1, 0))]
            out.index_add_(0, target[valid], values[valid])
            if progress is not None:
                progress(b)
        n_good = first_bad_sample(out, bound)
        if has_tail:
            n_good = add_continuation(
                self, times_s, out, n_good, bound, max_step_s, spacing, chunk_samples
            )
        return out[:n_good]

    def denormalise(self, x: torch.Tensor) -> np.ndarray:
        """Normalised samples → file amplitude (numpy float64)."""
        return (x * self.config.gain + self.config.offset).cpu().numpy()

    def partials(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(freqs_hz, amplitudes in file units, decays 1/s) of the tracks alive at the last node:
        what the band extension of `sonode.tasks.upsample` continues. Decays from each track's
        last two node magnitudes (≤ 0)."""
        with torch.no_grad():
            nodes = self.entry_nodes()
            last = torch.cumsum(self.track_length, 0) - 1
            freq = self.freq_hz[last].numpy()
            mag = torch.hypot(self.amp_re, self.amp_im)
            before = torch.where(self.track_length > 1, last - 1, last)
            ratio = (mag[last] + 1e-12) / (mag[before] + 1e-12)
            interval_s = self.config.hop_samples / self.config.sample_rate
            decay = torch.clamp(torch.log(ratio) / interval_s, max=0.0).numpy()
            amplitude = mag[last].numpy() * abs(self.config.gain)
            alive = (nodes[last] >= self.config.n_nodes - 2).numpy()
        return freq[alive], amplitude[alive], decay[alive]

    # ---- persistence -----------------------------------------------------------------------
    @torch.no_grad()
    def round_continuation(self) -> None:
        """Round the continuation's tensors to float32 values (a compact file stores them so;
        rounding the model itself keeps the file and the model identical)."""
        for name, t in self.state_dict().items():
            if name.startswith(_CONTINUATION) and t.is_floating_point():
                t.copy_(t.to(torch.float32).to(t.dtype))
        self.continuation_float32 = True

    def save(
        self,
        path: str | os.PathLike,
        info: dict[str, Any] | None = None,
        storage: str | None = None,
    ) -> None:
        """Write the model atomically: node tables in ``storage`` precision ("quantised": the
        compact codes of `sonode.model.local_codec` at ``steps``, which the fit has already
        rounded the tables to; "float32" halves a float64 file)."""
        storage = self.storage if storage is None else storage
        packed = storage == "quantised" and self.steps is not None and self.freq_shifts is not None
        dtype = torch.float32 if storage == "float32" else torch.float64
        tensors = {}
        # an untrained continuation field (zero output) and an inactive cycle are rebuilt on
        # loading, as are late modes equal to the early ones: no redundant buffers in the file
        untrained = self.tail_field.is_zero() and not self.tail_cycle.active
        state = self.state_dict()
        for name, t in state.items():
            if (untrained and name.startswith(("tail_field.", "tail_cycle."))) or (
                name.startswith("tail_late_bank.")  # each late tensor the same as the early one
                and torch.equal(t, state[name.replace("tail_late_bank.", "tail_bank.", 1)])
            ):
                continue
            if packed and name in ("freq_hz", "amp_re", "amp_im", "track_first", "track_length"):
                continue
            if packed and self.continuation_float32 and name.startswith(_CONTINUATION):
                t = t.to(torch.float32)  # lossless: the values were rounded so by the fit
            if name in ("freq_hz", "amp_re", "amp_im"):
                t = t.to(dtype)
            elif name in ("track_first", "track_length"):
                t = t.to(torch.int32)
            elif name == "readout_bias":
                continue
            tensors[name] = t.detach()
        meta = {"variant": self.variant, "config": asdict(self.config), "info": info or {}}
        version = LOCAL_FLOAT_VERSION
        if packed:
            blob = encode(
                *(getattr(self, n).detach().numpy() for n in _TABLES),
                self.config.hop_samples,
                self.config.sample_rate,
                *self.steps,
                self.freq_shifts,
                predict=self.predict_flags,
            )[0]
            tensors["node_tables"] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
            meta["tables"] = {
                "codec": CODEC,
                "n_tracks": self.n_tracks,
                "n_entries": self.n_entries,
                "freq_step_hz": self.steps[0],
                "state_step": self.steps[1],
            }
            tensors, packed_meta = pack_extras(tensors, meta.pop("info"))
            meta.update(packed_meta)
            version = LOCAL_VERSION
        save_model_file(path, tensors, meta, kind=MODEL_KIND, version=version)

    @classmethod
    def from_file(cls, path, tensors: dict, meta: dict) -> tuple[LocalModel, dict[str, Any]]:
        """The model from a checked container's tensors and metadata (see `SonodeModel.load`)."""
        config = local_config_from_meta(path, meta)
        info = meta.get("info", {})
        if PACKED_INFO in tensors:  # version 5: continuation and report compressed
            tensors, info = unpack_extras(path, tensors, meta)
        steps = None
        if "node_tables" in tensors:  # version 4: compact tables
            tensors = dict(tensors)
            decoded, steps = read_packed_tables(path, config, tensors.pop("node_tables"), meta)
            *decoded, shifts, predict = decoded
            tensors = {**tensors, **dict(zip(_TABLES, decoded, strict=True))}
        bad = table_problem(config, tensors)
        if bad:
            raise ModelFileError(
                f"{path}: the local model's tables are inconsistent ({bad}); the file is damaged "
                "or was edited — refit the clip"
            )
        first, length = (
            tensors[n].to(torch.int64).numpy() for n in ("track_first", "track_length")
        )
        model = cls(
            config,
            first,
            length,
            *(tensors[n].to(torch.float64).numpy() for n in ("freq_hz", "amp_re", "amp_im")),
        )
        fresh = model.state_dict()
        tensors = {**tensors, "readout_bias": fresh["readout_bias"]}
        legacy_continuation_tensors(tensors, fresh)
        expected = {n: tuple(t.shape) for n, t in fresh.items()}
        found = {n: tuple(t.shape) for n, t in tensors.items()}
        if expected != found:
            raise ModelFileError(
                f"{path}: tensors do not match the model's configuration "
                f"({sorted(set(expected.items()) ^ set(found.items()))[:3]}...); refit the clip"
            )
        model.load_state_dict({n: t.to(fresh[n].dtype) for n, t in tensors.items()})
        model.storage = "float32" if tensors["freq_hz"].dtype == torch.float32 else "float64"
        if steps is not None:
            model.storage, model.steps, model.freq_shifts = "quantised", steps, shifts.numpy()
            model.predict_flags = predict.numpy()
            model.continuation_float32 = any(
                t.dtype == torch.float32 for n, t in tensors.items() if n.startswith(_CONTINUATION)
            )
        return model, info
