"""Gap filling on folders of real recordings: sonode against gap-wise Janssen, per category.

    PYTHONPATH=. python benchmarks/bench_fill_wide.py data data/more --rate 16000 -o outputs/wide16
    PYTHONPATH=. python benchmarks/bench_fill_wide.py /work/corpus --rate 48000 --positions 2 -o DIR
    PYTHONPATH=. python benchmarks/bench_fill_wide.py data/more --method sonode --reuse DIR -o DIR2
    PYTHONPATH=. python benchmarks/bench_fill_wide.py --analyse OUT1 OUT2   # one table over runs

Every WAV and FLAC of the given folders (recursively; ``--every N``: every N-th, sorted) is
read at each ``--rate`` (first channel, at most
``--max-seconds``). Gaps of 10/20/40/80 ms are punched at ``--positions`` places per clip and
length drawn at random (``--seed``) among the sounding ones (RMS over the gap ≥ −20 dB re the
clip's loudest 20 ms) that leave 4096 samples on each side — not hand-picked. Each method fills
the same gaps from its own context: sonode methods ``--context`` seconds per side (less where the
clip ends), Janssen 4096 samples per side.

The reference is the issue's Janssen: Burg order ≤ 1024 (Janssen's 3·gap + 2 rule below that),
4096 samples of context per side, 20 iterations (``janssen20``). Per rate, length and category
(and over all): median SNR over the gap, wins against janssen20 (gaps where the method's SNR is
higher), median LSD over the gap. The category is the file name's prefix before the first "_"
(data/ and data/more name their clips so), or the first folder under the given one. Clips are
taken round-robin over the categories, so a run cut short still covers each.

Results go to OUT/results.json (every gap, rewritten after each clip) and OUT/results.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.fill_wide_tables import REFERENCE, analyse, markdown, summary
from sonode.dsp.ar_fill import JANSSEN_CONTEXT_SAMPLES, janssen_fill
from sonode.dsp.metrics import snr_db
from sonode.evaluation.evaluate_fill import gap_lsd, sounding_starts
from sonode.io.clip import read_clip
from sonode.tasks.fill import FillSettings, fill_one

LENGTHS_MS = (10, 20, 40, 80)


def _janssen20(left: np.ndarray, right: np.ndarray, n_gap: int, rate: int) -> np.ndarray:
    return janssen_fill(left, right, n_gap, max_order=1024, iterations=20)


def _classical(name: str) -> Callable:
    def run(left, right, n_gap, rate):
        return fill_one(left, right, n_gap, rate, FillSettings(method=name))

    return run


def _sonode(**changes) -> Callable:
    def run(left, right, n_gap, rate, settings: FillSettings):
        return fill_one(left, right, n_gap, rate, replace(settings, **changes))

    return run


# name -> (function, uses sonode's context). The sonode variants are the measured alternatives of
# docs/fill.md ("Why it lost"): the residual, the order set and the candidate set.
METHODS: dict[str, tuple[Callable, bool]] = {
    REFERENCE: (_janssen20, False),
    "janssen": (_classical("janssen"), False),
    "sonode": (_sonode(), True),
    "sonode_orders": (_sonode(candidates=()), True),
    "sonode_mean": (_sonode(residual="none"), True),
    "sonode_sample": (_sonode(residual="sample"), True),
}
# One run of every candidate on each gap, scored as several methods (the analysis of docs/fill.md):
# "parts" = the fill with the whole residual, "parts_default" = `sonode` (the residual at the default
# gain), "parts_mean" = the mean alone, "cand_<name>" = each candidate alone, "parts_best" = the
# candidate best on the pseudo-gaps alone.
PARTS = "parts"


def _parts(left, right, n_gap, rate, settings: FillSettings) -> dict[str, np.ndarray]:
    from sonode.dsp.gap_candidates import GAP_CANDIDATES, bound_candidates
    from sonode.dsp.interpolation import candidate_orders, interpolate_gap, level_residual

    result = interpolate_gap(
        left,
        right,
        n_gap,
        orders=candidate_orders(rate),
        seed=settings.seed,
        extra=bound_candidates(tuple(GAP_CANDIDATES), rate),
    )
    out = {PARTS: result.fill, PARTS + "_mean": result.mean, "_residual": result.residual}
    level = level_residual(result.mean, result.deviation)
    default = result.residual if settings.residual == "shaped" else level  # = sonode's fill:
    out[PARTS + "_default"] = result.mean + settings.residual_gain * default
    out[PARTS + "_level"] = result.mean + level
    out["_deviation"] = result.deviation
    for name, fill in zip(result.names, result.candidate_fills, strict=True):
        out["cand_" + name.replace(" ", "")] = fill
    out[PARTS + "_best"] = result.candidate_fills[int(np.nanargmax(result.validation_snr_db))]
    out["_validation_snr_db"] = result.validation_snr_db
    return out


def category_of(path: Path, root: Path) -> str:
    """The clip's category: the first folder under ``root``, else its name's prefix before '_'."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem.split("_")[0]


def random_positions(
    x: np.ndarray, rate: int, n_gap: int, count: int, margin: int, rng: np.random.Generator
) -> list[int]:
    """``count`` gap starts drawn without replacement among the sounding starts (hop n_gap/2) that
    leave ``margin`` samples on both sides; sorted."""
    sounding = sounding_starts(
        x, rate, n_gap, margin
    )  # the same places as `sonode eval --task fill`
    if sounding.size <= count:
        return sounding.tolist()
    return sorted(rng.choice(sounding, size=count, replace=False).tolist())


def run_clip(path: Path, root: Path, rate: int, args, methods: list[str]) -> list[dict]:
    clip = read_clip(path, rate=rate)
    x = clip.samples[: int(args.max_seconds * clip.sample_rate)]
    sr = clip.sample_rate
    # One generator per (clip, rate) from the seed: adding a clip or a method moves no gap.
    rng = np.random.default_rng([args.seed, sr, sum(path.name.encode())])
    settings = FillSettings(context_s=args.context)
    context = int(round(args.context * sr))
    records = []
    for length_ms in LENGTHS_MS:
        n_gap = int(round(length_ms * sr / 1000))
        for k, start in enumerate(
            random_positions(x, sr, n_gap, args.positions, JANSSEN_CONTEXT_SAMPLES, rng)
        ):
            truth = x[start : start + n_gap]
            gap = {"clip": path.name, "category": category_of(path, root), "rate": sr,
                   "length_ms": length_ms, "position": k, "start": start}  # fmt: skip
            for name in methods:
                if name == PARTS:
                    left = x[max(0, start - context) : start]
                    right = x[start + n_gap : start + n_gap + context]
                    begin = time.perf_counter()
                    parts = _parts(left, right, n_gap, sr, settings)
                    seconds = time.perf_counter() - begin
                    validation = parts.pop("_validation_snr_db").tolist()
                    residual = parts.pop("_residual")
                    deviation = parts.pop("_deviation")
                    if args.save_fills:  # for re-weighting offline (docs/fill.md's analysis)
                        folder = args.output / "fills"
                        folder.mkdir(exist_ok=True)
                        np.savez(
                            folder / f"{path.stem}_{sr}_{length_ms}_{start}.npz",
                            truth=truth,
                            validation_snr_db=np.array(validation),
                            mean=parts[PARTS + "_mean"],
                            residual=residual,
                            deviation=deviation,
                            **{k: v for k, v in parts.items() if k.startswith("cand_")},
                        )
                    for part, estimate in parts.items():
                        records.append(
                            {
                                **gap,
                                "method": part,
                                "snr_db": snr_db(truth, estimate),
                                "lsd": gap_lsd(truth, estimate),
                                "time_s": seconds,
                                "validation_snr_db": validation,
                            }  # fmt: skip
                        )
                    continue
                function, own_context = METHODS[name]
                width = context if own_context else JANSSEN_CONTEXT_SAMPLES
                left = x[max(0, start - width) : start]
                right = x[start + n_gap : start + n_gap + width]
                begin = time.perf_counter()
                if own_context:
                    estimate = function(left, right, n_gap, sr, settings)
                else:
                    estimate = function(left, right, n_gap, sr)
                seconds = time.perf_counter() - begin
                records.append(
                    {
                        **gap,
                        "method": name,
                        "snr_db": snr_db(truth, estimate),
                        "lsd": gap_lsd(truth, estimate),
                        "time_s": seconds,
                    }  # fmt: skip
                )
            print(f"{path.name} {sr} Hz {length_ms} ms #{k}", file=sys.stderr, flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", type=Path, nargs="+", help="Folders of WAV files.")
    parser.add_argument("--rate", type=int, action="append", help="Rates (Hz); default 16000.")
    parser.add_argument("--positions", type=int, default=3, help="Gaps per clip and length.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", type=float, default=FillSettings().context_s)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--every", type=int, default=1, help="Every N-th clip (sorted by path).")
    parser.add_argument(
        "--method",
        action="append",
        choices=[*METHODS, PARTS],
        help="Default: janssen20 and sonode.",
    )
    parser.add_argument(
        "--save-fills", action="store_true", help="parts: keep each candidate's fill (OUT/fills)."
    )
    parser.add_argument(
        "--reuse", type=Path, help="Earlier OUT: keep its records of other methods."
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/bench_fill_wide"))
    parser.add_argument(
        "--analyse",
        action="store_true",
        help="FOLDERS are earlier outputs: summarise them together and re-weigh their saved fills.",
    )
    args = parser.parse_args()
    if args.analyse:  # the positional folders are earlier outputs here: one summary over all
        records = [
            r for f in args.folders for r in json.loads((f / "results.json").read_text())["gaps"]
        ]
        print(markdown(summary(records)))
        for folder in args.folders:
            print(analyse(folder))
        return
    rates = args.rate or [16000]
    methods = args.method or [REFERENCE, "sonode"]
    records = []
    if args.reuse:
        old = json.loads((args.reuse / "results.json").read_text())["gaps"]
        records = [r for r in old if r["method"] not in methods and r["rate"] in rates]
    args.output.mkdir(parents=True, exist_ok=True)
    clips = [
        (p, f)  # the deepest folder first: data/more's clips are categorised under data/more
        for f in sorted(args.folders, key=lambda f: -len(f.resolve().parts))
        for p in sorted(q for q in f.rglob("*") if q.suffix.lower() in (".wav", ".flac"))
    ][:: args.every]
    seen: set = set()  # a folder inside another one given (data and data/more): each file once
    clips = [c for c in clips if not (c[0].resolve() in seen or seen.add(c[0].resolve()))]
    # Round-robin over the categories, so a run cut short still covers every category.
    by_category: dict[str, list] = {}
    for clip in clips:
        by_category.setdefault(category_of(*clip), []).append(clip)
    clips = [c for group in itertools.zip_longest(*by_category.values()) for c in group if c]
    for rate in rates:
        for path, root in clips:
            records += run_clip(path, root, rate, args, methods)
            rows = summary(records)
            (args.output / "results.json").write_text(
                json.dumps({"args": sys.argv[1:], "gaps": records, "summary": rows}, indent=1)
            )
            (args.output / "results.md").write_text(markdown(rows))
    print((args.output / "results.md").read_text())


if __name__ == "__main__":
    main()
