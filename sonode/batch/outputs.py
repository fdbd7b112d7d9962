"""The files one fit writes (model, reconstruction, report, loss curve, checkpoint): their names,
their rough sizes for the free-space check, the check before fitting, and the atomic writing.

A single `sonode fit` and every task of a batch (`sonode.batch.jobs`) write through these, so
both name, check and write their outputs the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonode.io.fileutil import write_json

#: Keys of `fit_output_paths`, in the order a fit writes them (the checkpoint goes last).
OUTPUT_KINDS = ("model", "recon", "report", "curve", "checkpoint")


def fit_output_paths(model_path: str | Path, stem: str | None = None) -> dict[str, Path]:
    """The files one fit writes: the model, <stem>.recon.wav, <stem>.fit.json, <stem>.fit.png beside
    it, and the resumable checkpoint <model>.ckpt (deleted when the fit completes). ``stem``
    defaults to the model's: side outputs are named after -o, so that two fits into one folder
    never replace each other's reports (without -o the model is <clip stem>.sonode, as before)."""
    model = Path(model_path)
    stem = model.stem if stem is None else stem
    return {
        "model": model,
        "recon": model.parent / f"{stem}.recon.wav",
        "report": model.parent / f"{stem}.fit.json",
        "curve": model.parent / f"{stem}.fit.png",
        "checkpoint": model.with_name(model.name + ".ckpt"),
    }


def fit_output_bytes(n_samples: int, latent_dim: int, hop_samples: int) -> dict[str, int]:
    """Rough sizes (bytes) of a fit's outputs, for the free-space check: the reconstruction is
    32-bit float, the model holds (segments x latent) float64 states, the checkpoint about four
    models (parameters, best parameters, Adam's two moments)."""
    model = 8 * latent_dim * (n_samples // max(1, hop_samples) + 2) + (1 << 20)
    return {
        "model": model,
        "recon": 4 * n_samples + 4096,
        "report": 1 << 20,
        "curve": 1 << 20,
        "checkpoint": 4 * model,
    }


def clip_fit_output_bytes(
    clip: str | Path, fit_kw: dict[str, Any], n_samples: int | None = None
) -> dict[str, int]:
    """`fit_output_bytes` of a fit of ``clip`` with the fit options ``fit_kw`` (`sonode fit`'s), from
    the samples its header announces (``n_samples``, when the caller has read them already with
    `sonode.model.fit_size.fit_span`), before the clip is read."""
    if n_samples is None:
        from sonode.model.fit_size import fit_span

        n_samples = fit_span(clip, fit_kw.get("rate"), fit_kw.get("duration_s"))[0]
    latent_dim = fit_kw.get("latent_dim") or fit_kw.get("max_latent_dim") or 256
    return fit_output_bytes(n_samples, latent_dim, fit_kw.get("hop_samples") or 256)


def check_fit_outputs(
    paths: dict[str, Path],
    inputs: Iterable[str | Path],
    force: bool,
    also_writes: Iterable[str | Path] = (),
    sizes: dict[str, int] | None = None,
) -> None:
    """Refuse before fitting (`sonode.io.outputs.OutputPlan`): an output that is an input, a FIFO or
    device, the same file as another output (also those in ``also_writes``, the caller's own), an
    existing file sonode did not write (unless ``force``), an unwritable folder, or too little free
    space for ``sizes`` (see `fit_output_bytes`). Raises OutputPathError."""
    from sonode.io.outputs import OutputPlan

    plan = OutputPlan(inputs, force)
    for kind, path in paths.items():
        plan.add(path, (sizes or {}).get(kind, 0))
    for path in also_writes:
        plan.add(path)
    plan.check()


def write_fit_outputs(
    fitted, clip: str, paths: dict[str, Path], extra: dict[str, Any], force: bool
) -> None:
    """Write a fit's model, JSON report, reconstruction and loss curve (each atomically), deleting
    its checkpoint once the model is written unless the fit was interrupted (then the checkpoint
    allows --resume).

    Args:
        fitted: a `sonode.api.Fitted`.
        clip: the input path (protected, and named in the curve's title).
        paths: `fit_output_paths`.
        extra: added to the report, e.g. {"device": "cpu"}.
        force: replace existing files sonode did not write.
    """
    check_fit_outputs(paths, [clip], force)
    for _, write in fit_output_writers(fitted, clip, paths, extra, force):
        write()


#: The first outputs of `fit_output_writers` (model and report): what an interrupted fit must leave.
ESSENTIAL_OUTPUTS = 2


def fit_output_writers(
    fitted, clip: str, paths: dict[str, Path], extra: dict[str, Any], force: bool
) -> list[tuple[Path, Any]]:
    """(path, write) of a fit's outputs in the order they are written: the model and its report
    first (ESSENTIAL_OUTPUTS: milliseconds), then the reconstruction and the loss curve (a render
    of the clip; matplotlib's import and drawing, seconds), which a stopped command may skip (sonode
    render and sonode plot make them from the model). Writing the model also deletes the checkpoint
    unless the fit was interrupted. The caller checks the outputs first (`check_fit_outputs`)."""
    from sonode.io.wav import write_wav
    from sonode.model.checkpoint import remove_checkpoint

    report = fitted.info["fit"]

    def model() -> None:
        fitted.save(paths["model"])
        if report["stop_reason"] != "interrupted":  # the model is safely written: it is redundant
            remove_checkpoint(paths["checkpoint"])

    title = f"{Path(clip).name}: reconstruction SNR {report['snr_db'] or float('inf'):.1f} dB"
    return [
        (paths["model"], model),
        (
            paths["report"],
            lambda: write_json(
                paths["report"], {**fitted.info, "model_file": str(paths["model"]), **extra}
            ),
        ),
        (
            paths["recon"],
            lambda: write_wav(
                paths["recon"],
                fitted.render().samples,
                fitted.sample_rate,
                protect=[clip],
                force=force,
            ),
        ),
        (paths["curve"], lambda: fitted.save_training_curve(paths["curve"], title=title)),
    ]


@dataclass(frozen=True)
class FitJob:
    """One clip of a batch: its input path and the unique stem of its outputs in ``out_dir``."""

    clip: str
    stem: str
    out_dir: str

    def paths(self) -> dict[str, Path]:
        """`fit_output_paths` of this clip."""
        return fit_output_paths(Path(self.out_dir) / f"{self.stem}.sonode", self.stem)
