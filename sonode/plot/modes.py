"""The local-mode model drawn: its mode trajectories over the spectrogram of what it renders.

Each track of `sonode.model.local.LocalModel` is a line through its node frequencies, darker and
thicker where its node states are louder, over the power spectrogram of the reconstruction; a
mode that follows a note lies on that note's partial, one that starts or stops shows where.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from sonode.plot.panels import new_figure, plot_spectrograms, png_path, save_figure

MAX_DRAWN_TRACKS = 400  # the loudest tracks; more only blacken the picture
FLOOR_DB = 60.0  # tracks quieter than this below the loudest node are not drawn


@torch.no_grad()
def track_lines(model) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per track, (times_s, freqs_hz, level_db relative to the loudest node), loudest first."""
    interval_s = model.config.hop_samples / model.config.sample_rate
    nodes = model.entry_nodes().numpy()
    level = 20 * np.log10(np.hypot(model.amp_re.numpy(), model.amp_im.numpy()) + 1e-300)
    level -= level.max(initial=0.0)
    lines = []
    start = 0
    for length in model.track_length.tolist():
        part = slice(start, start + length)
        lines.append((nodes[part] * interval_s, model.freq_hz.numpy()[part], level[part]))
        start += length
    lines.sort(key=lambda line: -float(line[2].max()))
    return [line for line in lines[:MAX_DRAWN_TRACKS] if line[2].max() > -FLOOR_DB]


def save_modes_png(path: str | os.PathLike, model, samples: np.ndarray, title: str) -> None:
    """The spectrogram of ``samples`` (the model's rendering at its rate, (n,)) with the model's
    mode trajectories drawn over it."""
    figure = new_figure(11.0, 5.0)
    ax = figure.subplots()
    plot_spectrograms([ax], {"reconstruction": samples}, model.config.sample_rate)
    for times_s, freqs_hz, level_db in track_lines(model):
        weight = float(np.clip(1 + level_db.max() / FLOOR_DB, 0.05, 1.0))
        if times_s.size == 1:
            ax.plot(times_s, freqs_hz, ".", color="white", alpha=weight, markersize=2)
        else:
            ax.plot(times_s, freqs_hz, "-", color="white", alpha=weight, linewidth=0.4 + weight)
    ax.set_title(title)
    save_figure(figure, png_path(path))
