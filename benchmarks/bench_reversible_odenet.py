"""What the reversible adjoint changes on the ODE-Net of docs/odenet.md (benchmarks/odenet_models.py).

The untrained ODE-Net (width 32, torch.manual_seed(0)) on the first training images of the bundled
8x8 digits, loss = cross-entropy. Its ODE block is solved by:
  dopri5 tol 1e-3, backsolve adjoint   (how docs/odenet.md trains the ODE-Net)
  rk4, L steps, backsolve adjoint      (docs/odenet.md's memory sweep)
  rk4, L steps, checkpoint adjoint     (sonode's discrete adjoint)
  reversible_heun, L steps, reversible adjoint
  reversible_rk4 (McCallum–Foster), L steps, reversible adjoint
each compared with backprop through the same solver.

Part 1 (one process; batch 8 as in docs/odenet.md's gradient table): ‖g − g_backprop‖ / ‖g_backprop‖
over all parameters, float32 and float64; the error of z(1) against dopri5 at 1e-8 (float64), relative.
Part 2 (a fresh subprocess per cell; batch 256 as in docs/odenet.md's memory table): peak resident
memory growth of one training step (Linux VmHWM reset just before it, minus VmRSS just before; MiB)
and its time in seconds, for L = 6 and 48.

Run:  /work/venv/bin/python benchmarks/bench_reversible_odenet.py [--depths 6 48]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing
from bench_adjoint_fixed import _status_kib
from odenet_models import WIDTH, ODEBlock, downsampling, head, load_digits_split

# name -> (method, adjoint mode, reference name)
CASES = {
    "dopri5 1e-3, backsolve": ("dopri5", "backsolve", "dopri5 1e-3, backprop"),
    "rk4, backsolve": ("rk4", "backsolve", "rk4, backprop"),
    "rk4, checkpoint": ("rk4", "checkpoint", "rk4, backprop"),
    "reversible_heun, reversible": ("reversible_heun", "reversible", "reversible_heun, backprop"),
    "reversible_rk4, reversible": ("reversible_rk4", "reversible", "reversible_rk4, backprop"),
    "dopri5 1e-3, backprop": ("dopri5", None, None),
    "rk4, backprop": ("rk4", None, None),
    "reversible_heun, backprop": ("reversible_heun", None, None),
    "reversible_rk4, backprop": ("reversible_rk4", None, None),
}


def model(
    method: str, mode: str | None, n_steps: int, dtype=torch.float32, tol: float = 1e-3
) -> nn.Sequential:
    """The ODE-Net of odenet_models.build_model with the given ODE block; same weights for every call."""
    torch.manual_seed(0)
    net = nn.Sequential(
        downsampling(WIDTH), ODEBlock(WIDTH, method, mode, n_steps=n_steps, tol=tol), head(WIDTH)
    )
    return net.to(dtype)


def batch(n: int, dtype=torch.float32):
    data = load_digits_split()
    return data["x_train"][:n].to(dtype), data["y_train"][:n]


def train_step(net: nn.Sequential, x, y):
    """Loss and gradient of one batch; returns (seconds, flat gradient)."""
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return time.perf_counter() - start, torch.cat([g.reshape(-1) for g in grads])


def gradient_errors(depth: int) -> list[str]:
    lines = []
    for dtype in (torch.float32, torch.float64):
        x, y = batch(8, dtype)
        grads, secs = {}, {}
        for name, (method, mode, _) in CASES.items():
            secs[name], grads[name] = train_step(model(method, mode, depth, dtype), x, y)
        for name, (method, _mode, ref) in CASES.items():
            if ref is None:
                continue
            err = float((grads[name] - grads[ref]).norm() / grads[ref].norm())
            steps = "adaptive" if method == "dopri5" else str(depth)
            lines.append(f"| {name} | {steps} | {str(dtype)[6:]} | {err:.2e} |")
    return lines


def solution_errors(depth: int) -> list[str]:
    x, _ = batch(8, torch.float64)
    with torch.no_grad():
        ref = model("dopri5", None, depth, torch.float64, tol=1e-8)[:2](x)
        out = []
        for method in ("rk4", "reversible_heun", "reversible_rk4"):
            z = model(method, None, depth, torch.float64)[:2](x)
            out.append(f"| {method} | {depth} | {float((z - ref).norm() / ref.norm()):.2e} |")
        z = model("dopri5", None, depth, torch.float64)[:2](x)
        out.append(f"| dopri5 1e-3 | adaptive | {float((z - ref).norm() / ref.norm()):.2e} |")
    return out


def child(name: str, depth: int) -> None:
    torch.set_num_threads(1)
    method, mode, _ = CASES[name]
    x, y = batch(256)
    net = model(method, mode, depth)
    train_step(model(method, mode, 2), x[:8], y[:8])  # warm-up: kernels, lazy initialisation
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    seconds, _ = train_step(net, x, y)
    print(json.dumps({"seconds": seconds, "growth_mib": (_status_kib("VmHWM") - before) / 1024}))


def memory_row(name: str, depths: list[int]) -> str:
    cells = []
    for depth in depths:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, str(depth)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{name} L={depth} failed:\n{proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        cells.append(f"{r['growth_mib']:.1f} MiB, {r['seconds']:.3f} s")
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--depths", type=int, nargs="+", default=[6, 48])
    parser.add_argument("--child", nargs=2, metavar=("NAME", "DEPTH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread\n")
    print("Gradient error against backprop through the same solver (batch 8, untrained ODE-Net):\n")
    print("| ODE block, adjoint | steps | dtype | ‖g − g_bp‖ / ‖g_bp‖ |\n|---|---|---|---|")
    for depth in args.depths:
        print(
            "\n".join(
                line
                for line in gradient_errors(depth)
                if depth == args.depths[0] or "dopri5" not in line
            )
        )
    print("\nz(1) error against dopri5 at 1e-8, float64, relative:\n")
    print("| solver | steps | ‖z − z_ref‖ / ‖z_ref‖ |\n|---|---|---|")
    for depth in args.depths:
        print(
            "\n".join(
                line
                for line in solution_errors(depth)
                if depth == args.depths[0] or "dopri5" not in line
            )
        )
    print(
        "\nOne training step, batch 256, float32: peak memory growth and time (fresh process per cell):\n"
    )
    print("| ODE block, gradient | " + " | ".join(f"L = {d}" for d in args.depths) + " |")
    print("|---|" + "---|" * len(args.depths))
    for name in (
        "reversible_heun, reversible",
        "reversible_heun, backprop",
        "reversible_rk4, reversible",
        "reversible_rk4, backprop",
        "rk4, backsolve",
        "rk4, checkpoint",
        "rk4, backprop",
    ):
        print(memory_row(name, args.depths))


if __name__ == "__main__":
    main()
