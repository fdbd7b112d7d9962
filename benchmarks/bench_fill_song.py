"""`sonode fill --detect` on real recordings: false alarms, recall, and a whole song end to end.

    PYTHONPATH=. python benchmarks/bench_fill_song.py detect data data/more /work/corpus/short48 /work/corpus/music44
    PYTHONPATH=. python benchmarks/bench_fill_song.py song /work/corpus/song/song_wesnoth_journeys_end.flac
    PYTHONPATH=. python benchmarks/bench_fill_song.py song --synthetic data/more   # no song at hand

``detect``: every WAV/FLAC of the folders (recursively) at its own rate, first channel:
- false alarms: what `detect_defects` flags on the clean recording (should be nothing);
- recall: ``--trials`` defects per file, one at a time (a missed click with the reason the
  click checks gave, or "not a candidate"), at seeded random sounding places (20 ms
  RMS ≥ −20 dB re the loudest): dropouts of 5-50 ms of zeros, clicks of 0.1-2 ms (decaying bursts
  of random sign, peak 0.1-0.5 × the file's peak); a hit is a detection overlapping the defect;
- proposed vs made: in files of ≥ 8 s, 2 dropouts and 3 clicks at once, ≥ 0.5 s apart;
- ``by_set``: the recall and false alarms per folder (short48 per category).

``song``: the song (or, with ``--synthetic FOLDER``, a 3-minute stereo file joined from the
folder's clips with 50 ms cross-fades, the right channel 0.3 s behind the left) as 16-bit stereo
WAV, damaged with ``--dropouts`` 20 ms dropouts (zeros in both channels) and ``--clicks`` clicks
(one channel each) at seeded random sounding places, then `python -m sonode fill DAMAGED -o OUT
--detect` is timed as a subprocess (interpreter start included). Checked: the wall time against
0.2 × the song's duration; every made defect inside a filled gap; OUT equal to DAMAGED bit for
bit outside the filled gaps; SNR of each repaired dropout (per channel) against the clean song.
Wall and CPU seconds (user + system, the children's) are both printed: on a loaded machine the
wall time is mostly waiting. ``--other TREE`` runs the same fill command from another checkout
(e.g. /work/main) on the same damaged file right after, and prints its wall and CPU seconds, the
ratio of the two, and how far the two outputs differ (int16 steps, and the dropouts' SNR):
a speed change measured side by side under the same load.
Files go to ``-o`` (outputs/, not in git).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from sonode.dsp.metrics import snr_db
from sonode.tasks.detect import detect_defects

REPO = Path(__file__).resolve().parent.parent


def audio_files(folders: list[Path]) -> list[Path]:
    found = [
        p
        for f in folders
        for p in sorted(f.rglob("*"))
        if p.suffix.lower() in (".wav", ".flac") and p.is_file()
    ]
    seen: set = set()  # a folder inside another one given (data and data/more): each file once
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def sounding_starts(x: np.ndarray, rate: int, margin_s: float = 0.06) -> np.ndarray:
    w = max(1, int(0.02 * rate))
    energy = np.concatenate([[0.0], np.cumsum(x**2)])  # 20 ms moving RMS by a running sum
    ends = np.clip(np.arange(x.size) + w // 2, 0, x.size)
    env = np.sqrt(np.maximum(energy[ends] - energy[np.maximum(ends - w, 0)], 0.0) / w)
    sounding = np.flatnonzero(env > 0.1 * env.max())
    return sounding[
        (sounding > int(margin_s * rate)) & (sounding < x.size - int(2 * margin_s * rate))
    ]


def make_defect(x: np.ndarray, rate: int, kind: str, start: int, rng) -> tuple[np.ndarray, int]:
    """Damage ``x`` in place at ``start``: a dropout (5-50 ms zeros) or a click; returns length."""
    if kind == "dropout":
        n = int(rng.uniform(0.005, 0.05) * rate)
        x[start : start + n] = 0.0
    else:
        n = max(1, int(rng.uniform(0.0001, 0.002) * rate))
        burst = np.exp(-np.arange(n) / (n / 3 + 1)) * rng.choice([-1.0, 1.0], n)
        x[start : start + n] += rng.uniform(0.1, 0.5) * np.abs(x).max() * burst
    return x, n


def _why_missed(y: np.ndarray, rate: int, start: int, n: int) -> str:
    """Why a made click was not reported: the reason `clicks` rejected it, or "not a candidate"."""
    from sonode.tasks.detect import _Loudness, clicks

    rejected: list = []
    clicks(y, rate, _Loudness(y, rate), rejected)
    why = [d.reason for d in rejected if d.start < start + n and start < d.end]
    return why[0] if why else "not a candidate (stage 1: residual factor or isolation too low)"


def set_of(path: Path) -> str:
    """The set a file belongs to: its folder, or short48's category (the part before "_")."""
    return (
        f"short48/{path.stem.split('_')[0]}" if path.parent.name == "short48" else path.parent.name
    )


def detect_benchmark(args) -> None:
    rng = np.random.default_rng(args.seed)
    counts = {"dropout": [0, 0], "click": [0, 0]}
    alarms, clean_s, misses, proposed = [], 0.0, [], []
    sets: dict = {}  # per set: {kind: [found, made]}
    for path in audio_files(args.folders):
        x, rate = sf.read(path, always_2d=True)
        x = x[:, 0]
        alarms += [
            {"file": str(path), "start_s": d.start / rate, "kind": d.kind, "reason": d.reason}
            for d in detect_defects(x, rate)
        ]
        clean_s += x.size / rate
        sets.setdefault(set_of(path), {"dropout": [0, 0], "click": [0, 0]})
        places = sounding_starts(x, rate)
        if places.size == 0:
            continue
        for trial in range(args.trials):
            kind = "dropout" if trial % 2 == 0 else "click"
            start = int(rng.choice(places))
            y, n = make_defect(x.copy(), rate, kind, start, rng)
            hit = any(d.start < start + n and start < d.end for d in detect_defects(y, rate))
            counts[kind][0] += hit
            counts[kind][1] += 1
            sets[set_of(path)][kind][0] += hit
            sets[set_of(path)][kind][1] += 1
            if not hit:
                misses.append(
                    {"file": str(path), "kind": kind, "start_s": start / rate, "n": n}
                    | ({"why": _why_missed(y, rate, start, n)} if kind == "click" else {})
                )
        if x.size >= 8 * rate:  # several defects at once: how many gaps does --detect propose?
            y, made = x.copy(), []
            for kind in ("dropout", "dropout", "click", "click", "click"):
                far = np.ones(places.size, dtype=bool)  # ≥ 0.5 s from each defect made so far
                for m, _ in made:
                    far &= np.abs(places - m) > 0.5 * rate
                free = places[far]
                start = int(rng.choice(free))
                y, n = make_defect(y, rate, kind, start, rng)
                made.append((start, n))
            found = detect_defects(y, rate)
            covered = sum(any(d.start < s + n and s < d.end for d in found) for s, n in made)
            proposed.append({"file": path.name, "made": 5, "proposed": len(found), "hit": covered})
    result = {
        "recall": {k: f"{h}/{t} ({100 * h / max(t, 1):.1f} %)" for k, (h, t) in counts.items()},
        "by_set": {
            name: ", ".join(f"{k}s {h}/{t}" for k, (h, t) in row.items())
            + f", false alarms {sum(set_of(Path(a['file'])) == name for a in alarms)}"
            for name, row in sorted(sets.items())
        },
        "false_alarms": alarms,
        "clean_audio_s": round(clean_s, 1),
        "misses": misses,
        "proposed_vs_made": proposed,
        "proposed_total": sum(p["proposed"] for p in proposed),
        "made_total": sum(p["made"] for p in proposed),
    }
    print(json.dumps(result, indent=1))


def synthetic_song(folder: Path, rate: int, seconds: float) -> np.ndarray:
    """Clips of ``folder`` resampled to ``rate``, joined with 50 ms equal-power cross-fades until
    ``seconds``; stereo, the right channel the same music 0.3 s later. (n, 2) in [-1, 1]."""
    from sonode.io.clip import read_clip

    clips = [read_clip(p, rate=rate).samples for p in audio_files([folder])]
    fade = int(0.05 * rate)
    w = np.sin(np.linspace(0, np.pi / 2, fade)) ** 2
    out = clips[0].copy()
    i = 1
    while out.size < seconds * rate + rate:
        c = clips[i % len(clips)] * (0.6 + 0.4 * ((i * 7) % 5) / 4)  # varied gains: no exact repeat
        out = np.concatenate(
            [out[:-fade], out[-fade:] * np.sqrt(1 - w) + c[:fade] * np.sqrt(w), c[fade:]]
        )
        i += 1
    lag = int(0.3 * rate)
    n = int(seconds * rate)
    song = np.stack([out[lag : lag + n], out[:n]], axis=1)
    return 0.9 * song / np.abs(song).max()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def song_benchmark(args) -> None:
    args.output.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        clean = synthetic_song(args.synthetic, 44100, args.seconds)
        rate = 44100
        clean = np.round(clean * 32767) / 32768  # on the 16-bit grid, as the WAV holds it
    else:
        clean, rate = sf.read(args.song, dtype="float64", always_2d=True)
    clean_path = args.output / "song_clean.wav"
    sf.write(clean_path, clean, rate, subtype="PCM_16")
    clean = sf.read(clean_path, always_2d=True)[0]
    rng = np.random.default_rng(args.seed)
    damaged = clean.copy()
    places = sounding_starts(clean.mean(axis=1), rate)
    made = []
    for kind in ["dropout"] * args.dropouts + ["click"] * args.clicks:
        free = [s for s in places.tolist()[::97] if all(abs(s - m["start"]) > rate for m in made)]
        start = int(rng.choice(free))
        if kind == "dropout":
            n = int(0.02 * rate)
            damaged[start : start + n] = 0.0
            made.append({"kind": kind, "start": start, "n": n, "channels": [0, 1]})
        else:
            channel = int(rng.integers(2))
            col, n = make_defect(damaged[:, channel].copy(), rate, "click", start, rng)
            damaged[:, channel] = col
            made.append({"kind": kind, "start": start, "n": n, "channels": [channel]})
    folder = args.output.resolve()  # absolute: the --other tree's command runs from its own folder
    damaged_path, out = folder / "song_damaged.wav", folder / "song_filled.wav"
    sf.write(damaged_path, damaged, rate, subtype="PCM_16")
    command = [sys.executable, "-m", "sonode", "fill", str(damaged_path), "-o", str(out)]
    command += ["--detect", "--quiet", "--force", "--method", args.method]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cpu0 = _children_cpu_s()
    begin = time.perf_counter()  # detection alone (and the interpreter's start): --dry-run
    subprocess.run(
        [sys.executable, "-m", "sonode", "fill", str(damaged_path), "--detect", "--dry-run"],
        check=True,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dry_run_s, cpu1 = time.perf_counter() - begin, _children_cpu_s()
    begin = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=REPO)
    seconds, cpu2 = time.perf_counter() - begin, _children_cpu_s()
    other = _other_tree(args, command, out, clean, made) if args.other else None
    report = json.loads(out.with_suffix(".fill.json").read_text())
    before = sf.read(damaged_path, dtype="int16", always_2d=True)[0]
    after = sf.read(out, dtype="int16", always_2d=True)[0]
    inside = np.zeros(before.shape[0], dtype=bool)
    for g in report["gaps"]:
        inside[round(g["start_s"] * rate) : round(g["end_s"] * rate)] = True
    filled = sf.read(out, always_2d=True)[0]
    repaired = []
    for m in made:
        span = slice(m["start"], m["start"] + m["n"])
        covered = bool(inside[span].all())
        snrs = [snr_db(clean[span, c], filled[span, c]) for c in m["channels"]]
        repaired.append({**m, "start_s": m["start"] / rate, "covered": covered, "snr_db": snrs})
    duration_s = before.shape[0] / rate
    print(
        json.dumps(
            {
                "song": str(args.synthetic or args.song),
                "method": args.method,
                "duration_s": duration_s,
                "channels": before.shape[1],
                "rate": rate,
                "wall_s": round(seconds, 2),
                "dry_run_wall_s": round(dry_run_s, 2),
                # CPU seconds (user + system) of the command: what the wall time would be on an
                # idle core; the shared machine's load makes the wall time mostly waiting
                "cpu_s": round(cpu2 - cpu1, 2),
                "dry_run_cpu_s": round(cpu1 - cpu0, 2),
                "real_time_ratio": round(seconds / duration_s, 4),
                "goal_s": 0.2 * duration_s,
                "made": len(made),
                "proposed": len(report["gaps"]),
                "all_made_covered": all(r["covered"] for r in repaired),
                "identical_outside_gaps": bool(np.array_equal(before[~inside], after[~inside])),
                "changed_inside_gaps": int(np.sum(np.any(before[inside] != after[inside], axis=1))),
                "dropout_snr_db_median": float(
                    np.median([s for r in repaired if r["kind"] == "dropout" for s in r["snr_db"]])
                ),
                "defects": repaired,
                "other_tree": other
                and {
                    **other,
                    "cpu_ratio_this_over_other": round((cpu2 - cpu1) / other["cpu_s"], 3),
                },
                "gaps": report["gaps"],
                "load_average": os.getloadavg(),
            },
            indent=1,
        )
    )


def _other_tree(args, command: list[str], out: Path, clean: np.ndarray, made: list) -> dict:
    """The same fill from the checkout ``args.other`` on the same damaged file, timed right after:
    its wall and CPU seconds and how far its output is from this tree's."""
    other_out = out.with_name(out.stem + "_other" + out.suffix)
    command = [c if c != str(out) else str(other_out) for c in command]
    cpu0, begin = _children_cpu_s(), time.perf_counter()
    # run from the other tree: `python -m` puts the working directory first on sys.path, so from
    # this tree's directory it would import this tree whatever PYTHONPATH says
    env = dict(os.environ, PYTHONPATH=str(args.other.resolve()))
    subprocess.run(command, check=True, env=env, cwd=args.other)
    wall_s, cpu_s = time.perf_counter() - begin, _children_cpu_s() - cpu0
    mine = sf.read(out, dtype="int16", always_2d=True)[0].astype(np.int32)
    theirs = sf.read(other_out, dtype="int16", always_2d=True)[0].astype(np.int32)
    filled = sf.read(other_out, always_2d=True)[0]
    spans = [(slice(m["start"], m["start"] + m["n"]), m) for m in made if m["kind"] == "dropout"]
    snrs = [snr_db(clean[s, c], filled[s, c]) for s, m in spans for c in m["channels"]]
    return {
        "tree": str(args.other),
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "max_int16_difference": int(np.max(np.abs(mine - theirs))),
        "samples_differing": int(np.sum(mine != theirs)),
        "dropout_snr_db_median": float(np.median(snrs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("detect")
    d.add_argument("folders", type=Path, nargs="+")
    d.add_argument("--trials", type=int, default=4, help="Defects per file (half each kind).")
    d.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("song")
    s.add_argument("song", type=Path, nargs="?")
    s.add_argument("--synthetic", type=Path, help="Join this folder's clips into a song instead.")
    s.add_argument("--seconds", type=float, default=180.0)
    s.add_argument("--dropouts", type=int, default=4)
    s.add_argument("--clicks", type=int, default=6)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--method", default="sonode", help="sonode fill --method (default sonode).")
    s.add_argument("-o", "--output", type=Path, default=Path("outputs/bench_fill_song"))
    s.add_argument("--other", type=Path, help="Another checkout to time side by side (its root).")
    args = parser.parse_args()
    if args.mode == "detect":
        detect_benchmark(args)
    elif args.song is None and args.synthetic is None:
        parser.error("song: give the song file or --synthetic FOLDER")
    else:
        song_benchmark(args)


if __name__ == "__main__":
    main()
