"""Music capacity: the global model (`fit --modes global`) against modes that follow the notes
(`fit --modes local`), side by side on every clip of a folder.

    python benchmarks/music_capacity.py /work/corpus/music44 --max-time 300
    python benchmarks/music_capacity.py data/more --rate 16000 --duration 1 --max-time 60
    python benchmarks/music_capacity.py /work/corpus/music44 --duration 3 --starts

``--choice`` prints, per clip, what ``--modes auto`` picks against the global start and the local
start before and after ``--steps`` (default 6) refinement iterations, in this process:

    python benchmarks/music_capacity.py data/more --rate 16000 --duration 1 --choice

``--starts`` compares the identified starts only (no training, no continuation), in this process:
the local model against the global one with 64 and with 128 modes (default hop and field).

Each fit runs in a fresh process (one torch thread) so that its peak memory (ru_maxrss) is its own.
Per clip and variant it prints the reconstruction SNR of the kept model and of the identified start,
the stored numbers per sample (all of the model's parameters; for local also the node tables
alone), the model file's size, the size of the fitted samples as 16-bit FLAC, the peak memory and
the wall time and CPU seconds (and the 1-minute load average before and after); then the
medians. ``--steps N`` fixes the training steps (for the
local model, Gauss–Newton iterations of the frequencies) instead of the wall-clock budget, so that
a loaded machine measures the same fit; ``--cpu-clock`` counts the ``--max-time`` budget in
the fit's CPU seconds instead of wall seconds, for the same reason (on one thread, the fit an
idle core would make within that budget). Stereo files are mixed to mono, as `sonode fit` does.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUDIO = (".wav", ".flac", ".ogg")


def fit_one(
    clip: str,
    variant: str,
    rate: int | None,
    duration_s: float | None,
    max_time_s: float,
    steps: int | None = None,
    cpu_clock: bool = False,
    keep_tables: str | None = None,
    keep_models: str | None = None,
):
    """Fit one clip with one variant in this process; a dict of figures. With ``cpu_clock`` the
    fit's budget is counted in this process's CPU seconds (see `main`'s ``--cpu-clock``); with
    ``keep_tables`` (a folder) a local fit's tables before rounding are saved there, with
    ``keep_models`` (a folder) the model files."""
    import soundfile
    import torch

    from sonode.api import fit

    if keep_tables:
        keep_unrounded(Path(keep_tables) / (Path(clip).stem + ".npz"))

    if cpu_clock:
        # every deadline of the fit reads time.perf_counter(): on one thread, CPU seconds are
        # what an idle core's wall clock would show, whatever the load of a shared machine
        time.perf_counter = time.process_time
    torch.set_num_threads(1)
    started = time.monotonic()
    fitted = fit(
        clip,
        rate=rate,
        duration_s=duration_s,
        modes=variant,
        max_time_s=max_time_s,
        steps=steps,
        threads=1,
    )
    wall = time.monotonic() - started
    model, report = fitted.model, fitted.info["fit"]
    n = model.config.n_samples
    with tempfile.TemporaryDirectory() as folder:
        path = Path(keep_models or folder) / f"{Path(clip).stem}.{variant}.sonode"
        fitted.save(path)
        model_bytes = path.stat().st_size
    buffer = io.BytesIO()
    samples = fitted.fitted_samples().samples
    soundfile.write(buffer, samples.clip(-1, 1), model.config.sample_rate, "PCM_16", format="FLAC")
    if hasattr(model, "stored_numbers"):
        numbers, tables = model.stored_numbers(), 3 * model.n_entries + 2 * model.n_tracks
    else:
        numbers = tables = sum(p.numel() for p in model.parameters())
    row = {
        "clip": Path(clip).name,
        "variant": report.get("identification", {}).get("variant", "global"),
        "rate": model.config.sample_rate,
        "seconds": n / model.config.sample_rate,
        "snr_db": report["snr_db"],
        "initial_snr_db": report["initial_snr_db"],
        "gain_db": report["snr_db"] - report["initial_snr_db"],
        "steps": report["epochs"],
        "numbers_per_sample": numbers / n,
        "tables_per_sample": tables / n,
        "numbers_per_s": numbers * model.config.sample_rate / n,
        "model_bytes": model_bytes,
        "flac_bytes": len(buffer.getvalue()),
        "wall_s": wall,
    }
    if getattr(model, "storage", None) == "quantised":
        row["stream_bytes"] = stream_bytes(model)
        row["rounding"] = report["identification"]["rounding"]
        row["hop_samples"] = model.config.hop_samples
        row["allocation"] = report["identification"].get("allocation")
    return row


def keep_unrounded(path: Path) -> None:
    """Save the tables the local fit hands to its compact rounding (before it), with the
    normalised clip and the fit's SNR, to ``path`` (npz): the input of codec experiments."""
    import numpy as np

    from sonode.model import local_fit

    store = local_fit._store_compactly

    def saving(model, xn, fit_db):
        config = model.config
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path, xn=xn, fit_db=fit_db, rate=config.sample_rate, hop=config.hop_samples,
            first=model.track_first.numpy(), length=model.track_length.numpy(),
            **{n: getattr(model, n).detach().numpy() for n in ("freq_hz", "amp_re", "amp_im")},
        )  # fmt: skip
        return store(model, xn, fit_db)

    local_fit._store_compactly = saving


def stream_bytes(model) -> dict:
    """Bytes of each integer stream of a compact local model's tables, each packed alone
    (`sonode.model.local_codec.pack`): where a file's bytes go."""
    from sonode.model.local_codec import encode, pack

    first, length = model.track_first.numpy(), model.track_length.numpy()
    tables = [getattr(model, n).detach().numpy() for n in ("freq_hz", "amp_re", "amp_im")]
    config = model.config
    # the stored values encode to the stored codes (decoding reproduces the encoder's arithmetic)
    blob, *_ = encode(
        first, length, *tables, config.hop_samples, config.sample_rate, *model.steps,
        model.freq_shifts, streams_only=True,
    )  # fmt: skip
    names = ("first", "length", "shifts", "predict", "freq_start", "freq")
    names += ("state_start_re", "state_start_im", "state_re", "state_im")
    return {n: len(pack([s])) for n, s in zip(names, blob, strict=True)}


def run_child(clip: Path, variant: str, args) -> dict:
    """`fit_one` in a fresh process; adds its peak resident memory (MiB)."""
    command = [sys.executable, __file__, "--one", str(clip), "--variant", variant]
    command += ["--max-time", str(args.max_time)]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    if args.cpu_clock:
        command += ["--cpu-clock"]
    if args.keep_tables:
        command += ["--keep-tables", args.keep_tables]
    if args.keep_models:
        command += ["--keep-models", args.keep_models]
    if args.rate:
        command += ["--rate", str(args.rate)]
    if args.duration:
        command += ["--duration", str(args.duration)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    load_before = os.getloadavg()[0]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        return {"clip": clip.name, "variant": variant, "error": f"exit status {status}"}
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_mib"] = usage.ru_maxrss / 1024
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    # the 1-minute load average before and after: a wall-clock budget buys less CPU under load
    result["load_before"], result["load_after"] = load_before, os.getloadavg()[0]
    return result


def main() -> None:
    from music_capacity_inprocess import choice, starts  # the in-process comparisons

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", help="folder of clips (searched recursively)")
    parser.add_argument("--rate", type=int, help="fit at this rate (default: the file's)")
    parser.add_argument("--duration", type=float, help="fit the first seconds only")
    parser.add_argument("--max-time", type=float, default=300.0, help="budget per fit (s)")
    parser.add_argument(
        "--steps", type=int, help="training steps (local: Gauss–Newton iterations), any time"
    )
    parser.add_argument(
        "--cpu-clock",
        action="store_true",
        help="count --max-time in the fit's CPU seconds (one thread), not wall seconds",
    )
    parser.add_argument(
        "--keep-tables", help="save each local fit's tables before rounding here (npz)"
    )
    parser.add_argument("--keep-models", help="save each fit's model file here")
    parser.add_argument("--variants", default="global,local")
    parser.add_argument("--limit", type=int, help="first N clips (sorted by name)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--starts", action="store_true", help="identified starts only")
    parser.add_argument(
        "--choice", action="store_true", help="what --modes auto picks, against both variants"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        row = fit_one(
            args.one,
            args.variant,
            args.rate,
            args.duration,
            args.max_time,
            args.steps,
            args.cpu_clock,
            args.keep_tables,
            args.keep_models,
        )
        print(json.dumps(row))
        return
    if not args.folder:
        parser.error("give a folder of clips")
    clips = sorted(p for p in Path(args.folder).rglob("*") if p.suffix.lower() in AUDIO)
    clips = clips[: args.limit] if args.limit else clips
    if args.choice:
        rows = []
        for clip in clips:
            rows.append(choice(clip, args.rate, args.duration, args.steps or 6))
            print(json.dumps(rows[-1]), flush=True)
        for key in ("global_start_db", "local_start_db", "local_refined_db", "picked_db"):
            print(f"median {key}: {statistics.median(r[key] for r in rows):.3f}")
        best = [max(r["global_start_db"], r["local_refined_db"]) for r in rows]
        wrong = sum(r["picked_db"] < b for r, b in zip(rows, best, strict=True))
        print(
            f"picks local on {sum(r['pick'] == 'local' for r in rows)} of {len(rows)}, "
            f"the worse of the two on {wrong}"
        )
        gains = [r["local_refined_db"] - r["local_start_db"] for r in rows]
        print(f"median refinement gain: {statistics.median(gains):+.3f} dB")
        return
    if args.starts:
        rows = []
        for clip in clips:
            rows.append(starts(clip, args.rate, args.duration))
            print(json.dumps(rows[-1]), flush=True)
        for key in ("local_db", "global64_db", "global128_db", "local_per_sample"):
            print(f"median {key}: {statistics.median(r[key] for r in rows):.3f}")
        return
    variants = args.variants.split(",")
    rows = []
    header = f"{'clip':34s} {'variant':7s} {'SNR':>6s} {'start':>6s} {'gain':>5s} {'num/smp':>7s}"
    header += f" {'tbl/smp':>7s} {'model kB':>8s} {'FLAC kB':>7s} {'peak MiB':>8s} {'s':>5s}"
    header += f" {'CPU s':>6s}"
    print(header, flush=True)
    for clip in clips:
        for variant in variants:
            row = run_child(clip, variant, args)
            rows.append(row)
            if args.json:  # after every fit, so that a long run's rows survive an interruption
                Path(args.json).write_text(json.dumps(rows, indent=1))
            if "error" in row:
                print(f"{clip.name[:34]:34s} {variant:7s} failed: {row['error']}", flush=True)
                continue
            print(
                f"{row['clip'][:34]:34s} {row['variant']:7s} {row['snr_db']:6.2f} "
                f"{row['initial_snr_db']:6.2f} {row['gain_db']:5.2f} "
                f"{row['numbers_per_sample']:7.3f} {row['tables_per_sample']:7.3f} "
                f"{row['model_bytes'] / 1e3:8.0f} {row['flac_bytes'] / 1e3:7.0f} "
                f"{row['peak_mib']:8.0f} {row['wall_s']:5.0f} {row['cpu_s']:6.0f}",
                flush=True,
            )
    if args.json:  # before the summary, so that the rows survive it
        Path(args.json).write_text(json.dumps(rows, indent=1))
    for variant in variants:
        good = [r for r in rows if r.get("variant") == variant and "error" not in r]
        if not good:
            continue
        med = {
            k: statistics.median(r[k] for r in good)
            for k, v in good[0].items()
            if isinstance(v, (int, float)) and k != "hop_samples"
        }
        ratio = statistics.median(r["model_bytes"] / r["flac_bytes"] for r in good)
        print(
            f"median {variant:7s} ({len(good)} clips): SNR {med['snr_db']:.2f} dB, start "
            f"{med['initial_snr_db']:.2f} dB, gain {med['gain_db']:.2f} dB, "
            f"{med['numbers_per_sample']:.3f} numbers/sample ({med['numbers_per_s']:.0f}/s), model/FLAC "
            f"{ratio:.2f}, peak {med['peak_mib']:.0f} MiB, max peak "
            f"{max(r['peak_mib'] for r in good):.0f} MiB, {med['wall_s']:.0f} s, "
            f"{med['cpu_s']:.0f} CPU s; model ≤ FLAC on "
            f"{sum(r['model_bytes'] <= r['flac_bytes'] for r in good)} of {len(good)}"
        )


if __name__ == "__main__":
    main()
