"""ODE-Net vs ResNet (Chen et al. 2018, Table 1) on the sonode engine, on scikit-learn's 8x8 digits.

Four models (benchmarks/odenet_models.py): a 1-layer MLP; a ResNet of 6 residual blocks; RK-Net (one
block of shared weights integrated by classical RK4 with 6 steps, gradients by backprop through the
solver); ODE-Net (the same block solved by dopri5 at rtol = atol = 1e-3, gradients by
odeint_adjoint's continuous adjoint, mode "backsolve" — the paper's method). Each is trained for the
same epochs with Adam and cosine learning-rate decay, random ±1 pixel shifts, over several seeds (the
data split is fixed; seeds change the initialisation and batch order). Reported per model: test
error (mean ± std over seeds), parameters, seconds per training epoch, f evaluations per batch
forward / backward (ODE-Net: counted in the last epoch).

Memory sweep: peak resident memory of one training step (batch 256 by default) as the depth grows
6, 12, 24, 48 — residual blocks for the ResNet, RK4 steps for RK-Net and for the ODE-Net (its step
count is forced by integrating with fixed-step RK4 of 1/L under the same backsolve adjoint, since an
adaptive solver chooses its own). Each configuration runs in a fresh subprocess; peak = Linux VmHWM
reset just before the step (as in bench_adjoint_fixed.py); "growth" = peak - resident size just
before the step, i.e. the step's own memory.

Run:  python benchmarks/odenet_digits.py [--quick] [--out DIR] [--threads 2]
Writes DIR/odenet_digits.json and DIR/odenet_digits.md (default DIR: outputs/odenet_digits).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # run from a checkout without installing
from odenet_models import ODE_TOL, build_model, load_digits_split, n_params, ode_func, random_shift  # noqa: E402
from odenet_report import check_goals, markdown_report  # noqa: E402

MODELS = ("mlp", "resnet", "rknet", "odenet")
SWEEP_MODELS = ("resnet", "rknet", "odenet-fixed")


@dataclass
class Config:
    """What one benchmark run does; the defaults are the full run, `quick()` the reduced one."""

    epochs: int = 30
    seeds: tuple[int, ...] = (0, 1, 2)
    depths: tuple[int, ...] = (6, 12, 24, 48)
    batch: int = 64
    memory_batch: int = 256
    lr: float = 3e-3
    threads: int = 2
    grad_check: bool = True
    models: tuple[str, ...] = field(default=MODELS)
    sweep_models: tuple[str, ...] = field(default=SWEEP_MODELS)

    @classmethod
    def quick(cls, threads: int = 2) -> "Config":
        return cls(epochs=1, seeds=(0, 1, 2), depths=(6, 12), memory_batch=128, threads=threads)


def train(name: str, seed: int, cfg: Config, data: dict) -> dict:
    """Train one model from scratch; return its test error (%), seconds per epoch and NFE per batch."""
    torch.manual_seed(seed)
    model = build_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n_batches = -(-len(data["y_train"]) // cfg.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * n_batches)
    gen = torch.Generator().manual_seed(seed)
    func = ode_func(model)
    epoch_s, nfe_fwd, nfe_bwd = [], [], []
    for _ in range(cfg.epochs):
        start = time.perf_counter()
        nfe_fwd, nfe_bwd = [], []  # keep only the last epoch's counts
        model.train()
        perm = torch.randperm(len(data["y_train"]), generator=gen)
        for i in range(0, len(perm), cfg.batch):
            idx = perm[i : i + cfg.batch]
            x = random_shift(data["x_train"][idx], data["background"], gen)
            n0 = func.nfe if func else 0
            loss = F.cross_entropy(model(x), data["y_train"][idx])
            n1 = func.nfe if func else 0
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if func:
                nfe_fwd.append(n1 - n0)
                nfe_bwd.append(func.nfe - n1)
        epoch_s.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
        wrong = (model(data["x_test"]).argmax(1) != data["y_test"]).sum().item()
    return {
        "model": name,
        "seed": seed,
        "test_error_pct": 100.0 * wrong / len(data["y_test"]),
        "epoch_s": statistics.median(epoch_s),
        "nfe_forward": statistics.mean(nfe_fwd) if func else None,
        "nfe_backward": statistics.mean(nfe_bwd) if func else None,
    }


def _status_kib(name: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now; VmHWM: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{name} not in /proc/self/status")


def training_step(model, opt, x, y) -> None:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def memory_child(name: str, depth: int, batch: int, threads: int) -> dict:
    """Subprocess body: peak memory and time of one training step of ``name`` at ``depth``.

    A warm-up step on 2 images first initialises kernels, gradients and Adam's state without
    building a large graph; then VmHWM is reset (writing 5 to /proc/self/clear_refs) so that the
    peak covers only the measured step (ru_maxrss would carry over from the parent process).
    """
    torch.set_num_threads(threads)
    data = load_digits_split()
    torch.manual_seed(0)
    model = build_model(name, depth=depth)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = data["x_train"][:batch], data["y_train"][:batch]
    training_step(model, opt, x[:2], y[:2])
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    training_step(model, opt, x, y)
    step_s = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return {"model": name, "depth": depth, "before_mib": before / 1024, "peak_mib": peak / 1024,
            "growth_mib": (peak - before) / 1024, "step_s": step_s, "params": n_params(model)}


def memory(name: str, depth: int, cfg: Config) -> dict:
    """Run `memory_child` in a fresh interpreter and return its result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", name, str(depth),
           str(cfg.memory_batch), str(cfg.threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


GRAD_CHECK_CASES = ((torch.float32, ODE_TOL), (torch.float64, 1e-4), (torch.float64, 1e-6))


def grad_check(batch: int = 8, cases=GRAD_CHECK_CASES) -> dict:
    """Relative difference of the ODE-Net's adjoint gradients from backprop's on one batch.

    The ODE-Net (seed 0, untrained) is differentiated three ways on the same batch of ``batch``
    training images: backprop through the dopri5 solve, the continuous adjoint ("backsolve", as
    trained) and the discrete adjoint ("checkpoint"). Returns {"<mode>_<dtype>_tol<tol>":
    ||g - g_backprop|| / ||g_backprop||} over all parameters stacked, for each (dtype, rtol = atol).
    """
    data = load_digits_split()
    x, y = data["x_train"][:batch], data["y_train"][:batch]
    result = {}
    for dtype, tol in cases:
        torch.manual_seed(0)
        model = build_model("odenet", tol=tol).to(dtype)
        grads = {}
        for mode in (None, "backsolve", "checkpoint"):
            model[1].adjoint_mode = mode
            model.zero_grad()
            F.cross_entropy(model(x.to(dtype)), y).backward()
            grads[mode] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        for mode in ("backsolve", "checkpoint"):
            rel = float((grads[mode] - grads[None]).norm() / grads[None].norm())
            result[f"{mode}_{str(dtype).split('.')[-1]}_tol{tol:g}"] = rel
    return result


def run(cfg: Config, log=print) -> dict:
    """The whole benchmark: training runs, memory sweep, gradient check. Returns the results dict."""
    torch.set_num_threads(cfg.threads)
    wall_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    data = load_digits_split()
    runs = []
    for name in cfg.models:
        for seed in cfg.seeds:
            r = train(name, seed, cfg, data)
            runs.append(r)
            log(f"  {name:7s} seed {seed}: test error {r['test_error_pct']:.2f} %, {r['epoch_s']:.2f} s/epoch"
                + (f", NFE fwd/bwd {r['nfe_forward']:.1f}/{r['nfe_backward']:.1f}" if r["nfe_forward"] else ""))
    sweep = []
    for name in cfg.sweep_models:
        for depth in cfg.depths:
            m = memory(name, depth, cfg)
            sweep.append(m)
            log(f"  memory {name:12s} depth {depth:3d}: peak {m['peak_mib']:.1f} MiB, "
                f"growth {m['growth_mib']:.1f} MiB, step {m['step_s']:.3f} s")
    grads = grad_check() if cfg.grad_check else {}
    for k, v in grads.items():
        log(f"  gradient vs backprop, {k}: relative difference {v:.2e}")
    results = {
        "config": asdict(cfg),
        "dataset": "scikit-learn load_digits (8x8, 1797 images; fixed stratified split 1198 train / 599 test)",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "torch": torch.__version__,
        "params": {name: n_params(build_model(name)) for name in cfg.models},
        "runs": runs,
        "memory": sweep,
        "grad_check": grads,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg()[0],
        "wall_s": time.perf_counter() - wall_start,
    }
    results["goals"] = check_goals(results)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced run (1 epoch, depths 6 and 12): < 2 min")
    parser.add_argument("--out", type=Path, default=HERE.parent / "outputs" / "odenet_digits",
                        help="directory for odenet_digits.json and .md (default: outputs/odenet_digits)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--epochs", type=int, help="override the number of training epochs")
    parser.add_argument("--memory-child", nargs=4, metavar=("MODEL", "DEPTH", "BATCH", "THREADS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        name, depth, batch, threads = args.memory_child
        print(json.dumps(memory_child(name, int(depth), int(batch), int(threads))))
        return
    cfg = Config.quick(args.threads) if args.quick else Config(threads=args.threads)
    if args.epochs:
        cfg.epochs = args.epochs
    print(f"ODE-Net vs ResNet on 8x8 digits ({'quick' if args.quick else 'full'} run, {cfg.threads} threads)")
    results = run(cfg)
    report = markdown_report(results)
    print("\n" + report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "odenet_digits.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "odenet_digits.md").write_text(report)
    print(f"wrote {args.out / 'odenet_digits.json'} and {args.out / 'odenet_digits.md'}")


if __name__ == "__main__":
    main()
