"""How a clip is cut into overlapping segments and how their trajectories are cross-faded.

Segment m starts at τ_m = m·hop/sample_rate seconds with its own initial state (multiple
shooting; docs/design.md). Its trajectory is read over [τ_m, τ_m + (hop + overlap)/sample_rate)
with a raised-cosine fade-in over its first `overlap` samples and a complementary fade-out over
the `overlap` samples after τ_{m+1}. The weights sum to one everywhere, so the rendered signal is
a smooth (C¹) blend of genuine ODE solutions at any rate: no clicks at segment boundaries. The
last segment never fades out: extrapolation simply continues its trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SegmentLayout:
    """Segments of a clip of ``n_samples`` samples at ``sample_rate`` Hz."""

    sample_rate: int
    n_samples: int
    hop_samples: int
    overlap_samples: int

    def __post_init__(self):
        if self.hop_samples < 1 or not 0 <= self.overlap_samples <= self.hop_samples:
            raise ValueError(
                f"need hop ≥ 1 and 0 ≤ overlap ≤ hop, got hop={self.hop_samples}, "
                f"overlap={self.overlap_samples}"
            )

    @property
    def n_segments(self) -> int:
        """M = ceil((n_samples − overlap)/hop): the last segment's fade-in ends inside the clip."""
        return max(1, math.ceil((self.n_samples - self.overlap_samples) / self.hop_samples))

    @property
    def window_samples(self) -> int:
        """Samples each (non-last) segment contributes to: hop + overlap."""
        return self.hop_samples + self.overlap_samples

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    def start_s(self) -> torch.Tensor:
        """τ_m in seconds, shape (M,), float64."""
        return torch.arange(self.n_segments, dtype=torch.float64) * (
            self.hop_samples / self.sample_rate
        )

    def weights(self, local_s: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
        """Cross-fade weight of ``segment`` at local time ``local_s`` = t − τ_m (seconds).

        Args:
            local_s: float64, any shape.
            segment: integer segment indices broadcastable to ``local_s``.

        Returns:
            float64 weights in [0, 1], same shape; zero outside the segment's support.
        """
        hop_s = self.hop_samples / self.sample_rate
        fade_s = self.overlap_samples / self.sample_rate
        first, last = segment == 0, segment == self.n_segments - 1
        if fade_s > 0:
            rise = 0.5 - 0.5 * torch.cos(math.pi * torch.clamp(local_s / fade_s, 0.0, 1.0))
            fall = 0.5 + 0.5 * torch.cos(
                math.pi * torch.clamp((local_s - hop_s) / fade_s, 0.0, 1.0)
            )
        else:
            rise = torch.ones_like(local_s)
            fall = (local_s < hop_s).to(local_s.dtype)
        w = torch.where(first, torch.ones_like(rise), rise) * torch.where(
            last, torch.ones_like(fall), fall
        )
        inside = (local_s >= 0) & (last | (local_s < hop_s + fade_s))
        return torch.where(inside, w, torch.zeros_like(w))

    def training_weights(
        self, segments: torch.Tensor | None = None, dtype: torch.dtype = torch.float64
    ) -> torch.Tensor:
        """Weights on the training grid, shape (window_samples, M): sample j of segment m; with
        ``segments`` (1-D indices, B of them) those columns only, (window_samples, B), the same
        values, on the device of ``segments``, computed in float64 and given in ``dtype``.
        (Slicing the whole matrix made every step of a 600 s 16 kHz fit, and every cost probe,
        form ~4 window × 37 500 arrays: 250 MB for a run of 64-256 segments.)"""
        device = None if segments is None else segments.device
        j = torch.arange(self.window_samples, device=device)[:, None]
        seg = (torch.arange(self.n_segments) if segments is None else segments)[None, :]
        w = self.weights(j.to(torch.float64) / self.sample_rate, seg)
        # samples past the clip's end carry no data
        inside = (seg * self.hop_samples + j) < self.n_samples
        return (w * inside).to(dtype)

    def overlap_add(self, per_segment: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Sum weighted segment outputs on the training grid into one signal.

        Args:
            per_segment: (window_samples, B) for segments first .. first + B − 1, already
                multiplied by their `training_weights`.
            first: index of the first segment.

        Returns:
            The samples from the first segment's start to the last one's window end (clipped to
            the clip): (n_samples,) when all segments are given.
        """
        w, m = per_segment.shape
        begin = first * self.hop_samples
        length = min(self.n_samples, (first + m - 1) * self.hop_samples + w) - begin
        device = per_segment.device
        index = torch.arange(m, device=device)[None, :] * self.hop_samples
        index = (index + torch.arange(w, device=device)[:, None]).reshape(-1)
        keep = index < length
        out = torch.zeros(length, dtype=per_segment.dtype, device=device)
        return out.index_add(0, index[keep], per_segment.reshape(-1)[keep])

    def complete_span(self, first: int, count: int) -> tuple[int, int]:
        """Samples [begin, end) that segments first .. first + count − 1 determine alone.

        A run of segments that does not start at segment 0 shares its first fade-in with the
        segment before it, and one that does not reach the last segment shares its last fade-out
        with the segment after it; those samples are incomplete in the run's `overlap_add`.
        """
        last = first + count - 1
        begin = first * self.hop_samples + (self.overlap_samples if first > 0 else 0)
        end = self.n_samples if last == self.n_segments - 1 else (last + 1) * self.hop_samples
        return begin, min(end, self.n_samples)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """The clip's samples seen by each segment window, zero past the end: (window_samples, M)."""
        padded = torch.zeros(
            self.n_segments * self.hop_samples + self.overlap_samples,
            dtype=x.dtype,
            device=x.device,
        )
        padded[: self.n_samples] = x
        return padded.unfold(0, self.window_samples, self.hop_samples)[: self.n_segments].T
