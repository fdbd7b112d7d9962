"""Why sonode's fill beats Janssen by what it does, per gap: candidates, their choice, the residual.

    PYTHONPATH=. python benchmarks/bench_fill_choice.py data data/more --rate 16000 --positions 2 \
        --lengths 20 40 80 -o outputs/choiceM16
    PYTHONPATH=. python benchmarks/bench_fill_choice.py --analyse outputs/choiceM16 [--per-gap]

The gaps are those of `bench_fill_wide.py` (seeded random sounding positions, not hand-picked; the
same generator, so the same places). For each gap every candidate of `sonode fill` (the orders and
the default extra candidates, plus ``reestimate3``: Janssen's iteration on the ODE's predictor run
three times instead of once) fills the real gap and ten pseudo-gaps: five per side at distances
k/6 of the free context from the real gap (k = 1..5; the method validates on k = 2 and 4, i.e.
1/3 and 2/3, `interpolate_gap`'s two per side). Every error of every candidate on every pseudo-gap
is saved (OUT/fills), so each choice rule is scored offline on the same fills:

- which pseudo-gaps (the method's, the nearest, near, far, all ten) and how their errors weigh
  the candidates (1/err² as the method, 1/err⁴, the single best);
- hindsight bounds: the best single candidate on the real gap, and the least-squares blend of the
  candidates fitted to the truth (no rule that averages them can do better);
- the residual: mean + gain × the shaped conditional deviation, the gain scanned (SNR vs LSD).

Everything is against the issue's reference, Janssen with 20 iterations (``janssen20``). "Δ" is
the median paired difference (same gap), "Δmed" the difference of the medians.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import scipy.optimize

from benchmarks.bench_fill_wide import _janssen20, category_of, random_positions
from sonode.dsp.ar_fill import JANSSEN_CONTEXT_SAMPLES
from sonode.dsp.gap_candidates import DEFAULT_GAP_CANDIDATES, bound_candidates, reestimated_fill
from sonode.dsp.interpolation import (
    LEVEL_KNEE_DB,
    ROWS_PER_ORDER,
    _usable,
    candidate_orders,
    fill_with_order,
    level_residual,
    missing_power_residual,
    order_fill,
)
from sonode.dsp.metrics import snr_db
from sonode.evaluation.evaluate_fill import gap_lsd
from sonode.io.clip import read_clip
from sonode.tasks.fill import FillSettings

SIXTHS = (1, 2, 3, 4, 5)  # pseudo-gap distances, in sixths of the free context
SUBSETS = {
    "method (1/3, 2/3)": (2, 4),
    "nearest (1/6)": (1,),
    "near (1/6, 1/3)": (1, 2),
    "far (2/3, 5/6)": (4, 5),
    "all ten": SIXTHS,
}
POWERS = {"1/err²": 2.0, "1/err⁴": 4.0, "best one": np.inf, "stacked (NNLS)": "stack"}
GAINS = (0.0, 0.125, 0.25, 0.375, 0.5, 1.0)
LEVEL_KNEES_DB = (21.0, 27.0, 33.0, 39.0, 45.0)


def sixth_pseudo_gaps(left: np.ndarray, right: np.ndarray, n_gap: int):
    """As `sonode.dsp.interpolation.pseudo_gaps` (the same slices for k = 2, 4), at k/6 of the free
    context; yields (k, pseudo left, pseudo right, truth)."""
    for x in (left, right[::-1]):
        n = x.shape[0]
        if n < n_gap:
            continue
        for k in SIXTHS:
            start = n - k * (n - n_gap) // 6 - n_gap
            yield k, x[:start], x[start + n_gap :], x[start : start + n_gap]


def measure_gap(left, right, n_gap, rate, seed=0) -> dict:
    """Every candidate on the real gap and the ten pseudo-gaps (arrays saved per gap)."""
    orders = sorted(o for o in candidate_orders(rate) if _usable(o, left.size, right.size))
    extra = bound_candidates(DEFAULT_GAP_CANDIDATES, rate)
    extra["reestimate3"] = lambda lf, rt, n: reestimated_fill(lf, rt, n, rate, iterations=3)
    names = [f"order {o}" for o in orders] + list(extra)
    pseudo = list(sixth_pseudo_gaps(left, right, n_gap))
    errors = np.full((len(pseudo), len(names)), np.nan)
    pseudo_fills = np.full((len(pseudo), len(names), n_gap), np.nan)
    top = np.zeros(len(pseudo), dtype=int)  # the largest order each pseudo-gap supports
    for i, (_, pl, pr, truth) in enumerate(pseudo):
        usable = [o for o in orders if _usable(o, pl.size, pr.size)]
        top[i] = max(usable, default=0)
        for j, o in enumerate(orders):
            if o in usable:
                pseudo_fills[i, j] = fill_with_order(pl, pr, n_gap, o, ROWS_PER_ORDER * o)
        for j, f in enumerate(extra.values(), start=len(orders)):
            pseudo_fills[i, j] = f(pl, pr, n_gap)
        errors[i] = np.sum((pseudo_fills[i] - truth) ** 2, axis=1)
    noise = np.random.default_rng(seed).standard_normal(n_gap + max(orders))
    parts = [order_fill(left, right, n_gap, o, ROWS_PER_ORDER * o, noise) for o in orders]
    fills = [p.mean for p in parts] + [f(left, right, n_gap) for f in extra.values()]
    return {
        "names": np.array(names),
        "orders": np.array(orders),
        "fills": np.array(fills),
        "deviations": np.array([p.deviation for p in parts]),
        "errors": errors,
        "pseudo_fills": pseudo_fills,
        "pseudo_truths": np.array([t for *_, t in pseudo]),
        "energy": np.array([np.sum(t**2) for *_, t in pseudo]),
        "k": np.array([p[0] for p in pseudo]),
        "top": top,
    }


def combine(
    d, ks=(2, 4), power=2.0, names=None, residual="level", gain=1.0, knee_db=LEVEL_KNEE_DB
) -> np.ndarray:
    """The fill `interpolate_gap` would make validating on the pseudo-gaps at ``ks`` sixths with
    weights ∝ err^-power (inf: the single best; "stack": non-negative least squares of the
    candidates' pseudo-gap fills on the pseudo-gaps' truth, Breiman's stacking), over the
    candidates ``names`` (default: the method's, all but reestimate3), plus ``gain`` × the
    ``residual`` ("level": `level_residual` with ``knee_db``, the method; "shaped":
    `missing_power_residual`; "none")."""
    all_names = list(d["names"])
    names = names or [n for n in all_names if n != "reestimate3"]
    cols = [all_names.index(n) for n in names]
    orders = list(d["orders"])
    n_orders = sum(n.startswith("order") for n in names)
    chosen = np.isin(d["k"], ks)
    used_orders, rows = orders, np.zeros(len(d["k"]), bool)
    for t in range(len(orders) - 1, -1, -1):  # validation_plan: the largest order any supports
        rows = chosen & (d["top"] >= orders[t])
        if rows.any():
            used_orders = orders[: t + 1]
            break
    cols = [
        c
        for c, n in zip(cols, names, strict=True)
        if not n.startswith("order") or int(n[6:]) in used_orders
    ]
    n_orders = len([c for c in cols if all_names[c].startswith("order")])
    errors = d["errors"][np.ix_(rows, cols)].sum(axis=0)
    energy = d["energy"][rows].sum()
    if power == "stack" and rows.any():
        a = np.concatenate([d["pseudo_fills"][r][cols].T for r in np.flatnonzero(rows)])
        weights = scipy.optimize.nnls(a, np.concatenate(d["pseudo_truths"][rows]))[0]
        if weights.sum() == 0:
            weights = np.ones(len(cols))
    elif rows.any() and energy > 0 and np.all(errors > 0):
        if np.isinf(power):
            weights = (errors == errors.min()).astype(float)
        else:
            weights = (errors / errors.min()) ** -power  # scaled: same ratios, no overflow
    else:
        weights = np.ones(len(cols))
    if power != "stack":
        weights = weights / weights.sum()
    mean = weights @ d["fills"][cols]
    if residual == "none" or gain == 0:
        return mean
    ow = weights[:n_orders]
    ow = ow / ow.sum() if ow.sum() > 0 else np.full(n_orders, 1 / n_orders)
    deviation = ow @ d["deviations"][:n_orders]
    if residual == "level":
        return mean + gain * level_residual(mean, deviation, knee_db)
    return mean + gain * missing_power_residual(mean, deviation)


def blend_oracle(d, truth) -> np.ndarray:
    """The least-squares combination of the candidates' fills closest to the truth (hindsight)."""
    w, *_ = np.linalg.lstsq(d["fills"].T, truth, rcond=None)
    return d["fills"].T @ w


def run(args) -> None:
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "fills").mkdir(exist_ok=True)
    clips = [
        (p, f)  # the deepest folder first: data/more's clips are categorised under data/more
        for f in sorted(args.folders, key=lambda f: -len(f.resolve().parts))
        for p in sorted(q for q in f.rglob("*") if q.suffix.lower() in (".wav", ".flac"))
    ]
    seen: set = set()
    clips = [c for c in clips if not (c[0].resolve() in seen or seen.add(c[0].resolve()))]
    clips = clips[:: args.every]
    by_category: dict[str, list] = {}
    for clip in clips:
        by_category.setdefault(category_of(*clip), []).append(clip)
    clips = [c for group in itertools.zip_longest(*by_category.values()) for c in group if c]
    records = []
    for path, root in clips:
        clip = read_clip(path, rate=args.rate)
        x, sr = clip.samples[: int(10.0 * clip.sample_rate)], clip.sample_rate
        # the generator of bench_fill_wide.py: the same gaps for the same clip, seed and rate
        rng = np.random.default_rng([args.seed, sr, sum(path.name.encode())])
        context = int(round(FillSettings().context_s * sr))
        for length_ms in (10, 20, 40, 80):
            n_gap = int(round(length_ms * sr / 1000))
            starts = random_positions(x, sr, n_gap, args.positions, JANSSEN_CONTEXT_SAMPLES, rng)
            if length_ms not in args.lengths:
                continue  # drawn anyway, so the other lengths' gaps stay where they were
            for start in starts:
                truth = x[start : start + n_gap]
                w = JANSSEN_CONTEXT_SAMPLES
                j20 = _janssen20(
                    x[start - w : start], x[start + n_gap : start + n_gap + w], n_gap, sr
                )
                d = measure_gap(
                    x[max(0, start - context) : start],
                    x[start + n_gap : start + n_gap + context],
                    n_gap,
                    sr,
                )
                stem = f"{path.stem}_{sr}_{length_ms}_{start}"
                np.savez(args.output / "fills" / f"{stem}.npz", truth=truth, janssen20=j20, **d)
                records.append(
                    {
                        "clip": path.name,
                        "category": category_of(path, root),
                        "rate": sr,
                        "length_ms": length_ms,
                        "start": start,
                        "file": stem,
                    }
                )
                print(stem, file=sys.stderr, flush=True)
            (args.output / "gaps.json").write_text(
                json.dumps({"args": sys.argv[1:], "gaps": records})
            )


def analyse(folders: list[Path], per_gap: bool) -> str:
    rows: dict[tuple, list] = {}  # (length, label) -> [(Δ, snr, j20 snr, lsd, j20 lsd, category)]
    gap_lines = []
    for folder in folders:
        for g in json.loads((folder / "gaps.json").read_text())["gaps"]:
            d = dict(np.load(folder / "fills" / f"{g['file']}.npz"))
            truth, j20 = d["truth"], d["janssen20"]
            ref = (snr_db(truth, j20), gap_lsd(truth, j20))

            def add(label, fill, g=g, ref=ref, truth=truth):
                s, lsd = snr_db(truth, fill), gap_lsd(truth, fill)
                category = g["clip"].split("_")[0]  # data/more's clips are "more" under data/
                rows.setdefault((g["length_ms"], label), []).append(
                    (s - ref[0], s, ref[0], lsd, ref[1], category)
                )
                return s

            default = add("the method (level residual)", combine(d))
            add(
                "shaped residual x 0.25 (the method before)",
                combine(d, residual="shaped", gain=0.25),
            )
            for (sub, ks), (pw, power) in itertools.product(SUBSETS.items(), POWERS.items()):
                add(f"mean: {sub}, {pw}", combine(d, ks, power, residual="none"))
            method_names = [n for n in d["names"] if n != "reestimate3"]
            with_re3 = [*method_names, "reestimate3"]
            add("mean: method + reestimate3", combine(d, names=with_re3, residual="none"))
            add(
                "mean: orders only",
                combine(d, names=[n for n in method_names if n[:5] == "order"], residual="none"),
            )
            for gain in GAINS:
                add(f"shaped residual x {gain:g}", combine(d, residual="shaped", gain=gain))
            for knee in LEVEL_KNEES_DB:
                add(f"residual level-aware, knee {knee:g} dB", combine(d, knee_db=knee))
            each = [snr_db(truth, f) for f in d["fills"]]
            best = int(np.argmax(each))
            add("hindsight: best one candidate", d["fills"][best])
            add("hindsight: least-squares blend", blend_oracle(d, truth))
            for n, f in zip(d["names"], d["fills"], strict=True):
                add(f"alone: {n}", f)
            if per_gap:
                val = -10 * np.log10(
                    d["errors"][np.isin(d["k"], (2, 4))].sum(0)
                    / d["energy"][np.isin(d["k"], (2, 4))].sum()
                )
                chosen = int(np.nanargmax(val))
                gap_lines.append(
                    f"| {g['clip']} | {g['length_ms']} | {g['start']} | {ref[0]:.2f} | {default:.2f} "
                    f"| {default - ref[0]:+.2f} | {d['names'][chosen]} ({each[chosen]:.2f}) "
                    f"| {d['names'][best]} ({each[best]:.2f}) | {snr_db(truth, blend_oracle(d, truth)):.2f} |"
                )
    lines = [
        "| gap | rule | n | Δ dB | Δmed dB | wins | Δ ≥ 1 dB | SNR | LSD (janssen20) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (length, label), rs in sorted(rows.items()):
        delta = statistics.median(r[0] for r in rs)
        dmed = statistics.median(r[1] for r in rs) - statistics.median(r[2] for r in rs)
        lines.append(
            f"| {length} ms | {label} | {len(rs)} | {delta:+.2f} | {dmed:+.2f} | "
            f"{sum(r[0] > 0 for r in rs)} | {sum(r[0] >= 1 for r in rs)} | {statistics.median(r[1] for r in rs):.2f} | "
            f"{statistics.median(r[3] for r in rs):.2f} ({statistics.median(r[4] for r in rs):.2f}) |"
        )
    cats = [
        "",
        "Per category: Δ / wins of n (the method), median Δ of the best one in hindsight",
        "",
    ]
    for (length, label), rs in sorted(rows.items()):
        if label.startswith("the method"):
            by: dict[str, list] = {}
            for r in rs:
                by.setdefault(r[5], []).append(r[0])
            best: dict[str, list] = {}
            for r in rows[(length, "hindsight: best one candidate")]:
                best.setdefault(r[5], []).append(r[0])
            cats.append(
                f"- {length} ms: "
                + ", ".join(
                    f"{c} {statistics.median(v):+.2f} / {sum(x > 0 for x in v)} of {len(v)} "
                    f"({statistics.median(best[c]):+.2f})"
                    for c, v in sorted(by.items())
                )
            )
    out = "\n".join(lines + cats) + "\n"
    if per_gap:
        out += (
            "\n| clip | ms | start | janssen20 | method | Δ | best on pseudo-gaps (SNR) | "
            "best in hindsight (SNR) | LS blend |\n|---|---|---|---|---|---|---|---|---|\n"
        )
        out += "\n".join(gap_lines) + "\n"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--positions", type=int, default=2)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=1, help="Every N-th clip (sorted by path).")
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/bench_fill_choice"))
    parser.add_argument("--analyse", action="store_true", help="FOLDERS are earlier outputs.")
    parser.add_argument("--per-gap", action="store_true", help="analyse: one line per gap too.")
    args = parser.parse_args()
    if args.analyse:
        print(analyse(args.folders, args.per_gap))
    else:
        run(args)


if __name__ == "__main__":
    main()
