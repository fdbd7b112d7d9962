"""What one least-squares solve of the segment states buys at points along Adam's path.

    python benchmarks/state_solve_probe.py data/decaying_steelguitar_C4.wav [STEPS]

Takes the fit's own steps (`sonode.model.objective.step_loss`, Adam with the fit's groups and
warm-up, every segment in each step, no state solves) on one clip at 16 kHz, 1 thread, and every 25
steps prints the whole-clip reconstruction SNR of the current parameters, after one least-squares
solve of the states (envelope Γ frozen at the current states) and after a second (Γ recomputed at
the first solve's states), with the CPU seconds of a solve. The fit keeps the best of these
(`sonode.model.linear_step.solve_states`).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sonode.io.clip import read_clip  # noqa: E402
from sonode.model import FitOptions  # noqa: E402
from sonode.model.adam import Adam  # noqa: E402
from sonode.model.init import (
    TRAJECTORY_S,  # noqa: E402
    initial_from_options as _initial,
)
from sonode.model.linear_step import refit_segment_states, run_error  # noqa: E402
from sonode.model.objective import param_groups, step_loss  # noqa: E402
from sonode.model.train import WARMUP_EPOCHS  # noqa: E402

RATE_HZ = 16000


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    clip = read_clip(sys.argv[1], rate=RATE_HZ)
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    options = FitOptions(continuation_samples=0, state_solve_every=0)
    model, _ = _initial(clip.samples, RATE_HZ, options)
    target = torch.from_numpy((clip.samples - model.config.offset) / model.config.gain)
    power = float(torch.sum(target**2))
    n_trajectory = min(target.shape[0], int(TRAJECTORY_S * RATE_HZ))
    trajectory_power = float(torch.mean(target[:n_trajectory] ** 2))

    def snr(m) -> float:
        return 10 * math.log10(power / run_error(m, target, None))

    def solved(m):
        out = copy.deepcopy(m)
        with torch.no_grad():
            out.states.copy_(refit_segment_states(m, target))
        return out

    optimiser = Adam(param_groups(model, options.lr, n_trajectory / RATE_HZ))
    for group in optimiser.param_groups:
        group["base_lr"] = group["lr"]
    print(f"{'step':>5s} {'Adam dB':>8s} {'1 solve':>8s} {'2 solves':>9s} {'solve CPU s':>11s}")
    for step in range(steps + 1):
        if step % 25 == 0:
            start = time.process_time()
            once = solved(model)
            cost = time.process_time() - start
            print(
                f"{step:5d} {snr(model):8.2f} {snr(once):8.2f} {snr(solved(once)):9.2f} {cost:11.2f}"
            )
        if step == steps:
            break
        for group in optimiser.param_groups:
            group["lr"] = group["base_lr"] * min(1.0, (step + 1) / WARMUP_EPOCHS)
        optimiser.zero_grad()
        log_objective, _, _ = step_loss(
            model, target, options, step, None, n_trajectory, trajectory_power
        )
        log_objective.backward()
        optimiser.step()


if __name__ == "__main__":
    main()
