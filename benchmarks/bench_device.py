"""Float64 against float32 training, and the GPU where there is one, side by side in one run.

    python benchmarks/bench_device.py                      # the data/ clips, 1 s at 16 kHz, 50 steps
    python benchmarks/bench_device.py CLIP_OR_FOLDER ... --steps 50 --duration 1 --threads 1

For every clip, each configuration is fitted in a fresh process (same options, seed and step count,
no time limit, continuation training off: the trained parts only): "cpu float64" (the reference
and default), "cpu float32" (the GPU's dtype forced on the CPU: its numerics, measured anywhere) and,
when torch sees a CUDA device, "cuda float32" (the `--device cuda` path). Printed per clip: the
kept reconstruction SNR (measured on the float64 CPU model every fit returns), the one free run's
SNR, the discretisation check, the fit's CPU seconds (user + sys of the child: identification
included, the same in every configuration), its wall seconds and wall seconds per step (beside the
load average), the peak resident memory of the fit (VmHWM) and, on CUDA, torch's peak allocated GPU
memory; then a 48 kHz render of the fitted span on the configuration's device (CPU seconds). The
ratios are float32 / float64 of the same run.
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

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [("cpu", "float64"), ("cpu", "float32"), ("cuda", "float32")]


def _child(clip: str, device: str, dtype: str, args) -> dict:
    import torch

    sys.path.insert(0, str(ROOT))
    from sonode.io.clip import read_clip
    from sonode.model import FitOptions, fit_samples
    from sonode.tasks.render import render

    torch.set_num_threads(args.threads)
    samples = read_clip(clip, rate=args.rate, duration_s=args.duration)
    options = FitOptions(
        steps=args.steps,
        max_time_s=None,
        device=device,
        dtype=dtype,
        continuation_training_steps=0,
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    model, report = fit_samples(samples.samples, samples.sample_rate, options)
    fit_cpu_s, fit_wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    fit_peak_mib = _vm_hwm_mib()  # the fit's peak, before the render
    cpu0 = time.process_time()
    rendered = render(model, rate=48000, device=device).samples
    render_cpu_s = time.process_time() - cpu0
    gpu_peak = torch.cuda.max_memory_allocated() >> 20 if device == "cuda" else None
    return {
        "initial_db": report.initial_snr_db,
        "kept_db": report.snr_db,
        "free_run_db": report.trajectory_snr_db,
        "check_db": report.discretisation_snr_db,
        "fallback": report.discretisation_fallback,
        "steps": report.epochs,
        "step_s": report.seconds_per_epoch,
        "fit_cpu_s": fit_cpu_s,
        "fit_wall_s": fit_wall_s,
        "render_cpu_s": render_cpu_s,
        "render_s": rendered.size / 48000,
        "peak_mib": fit_peak_mib,
        "gpu_peak_mib": gpu_peak,
    }


def _vm_hwm_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _clips(paths: list[str]) -> list[Path]:
    found = []
    for p in map(Path, paths or [ROOT / "data"]):
        found += sorted(p.glob("*.wav")) if p.is_dir() else [p]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="clips or folders (default: data/)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds of each clip")
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--child", nargs=3, metavar=("CLIP", "DEVICE", "DTYPE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(*args.child, args)))
        return
    import torch

    configs = [c for c in CONFIGS if c[0] == "cpu" or torch.cuda.is_available()]
    print(
        f"torch {torch.__version__}, CUDA device: {torch.cuda.is_available()}; {args.duration} s at "
        f"{args.rate} Hz, {args.steps} steps, {args.threads} thread(s); load average "
        f"{os.getloadavg()[0]:.2f} at the start"
    )
    header = (
        f"{'clip':28s} {'config':13s} {'start':>6s} {'kept':>6s} {'free':>6s} {'check':>6s} "
        f"{'fit CPU s':>9s} {'wall s':>7s} {'s/step':>6s} {'peak MiB':>8s} {'GPU MiB':>7s} {'render CPU s':>12s}"
    )
    print(header)
    ratios = []
    for clip in _clips(args.paths):
        rows = {}
        for device, dtype in configs:
            child = [sys.executable, __file__, "--child", str(clip), device, dtype]
            child += ["--steps", str(args.steps), "--duration", str(args.duration)]
            child += ["--rate", str(args.rate), "--threads", str(args.threads)]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(child, capture_output=True, text=True, env=env, check=False)
            if out.returncode:
                print(f"{clip.name[:28]:28s} {device} {dtype}: failed: {out.stderr.strip()[-300:]}")
                continue
            row = rows[(device, dtype)] = json.loads(out.stdout.strip().splitlines()[-1])
            gpu = "-" if row["gpu_peak_mib"] is None else f"{row['gpu_peak_mib']:.0f}"
            print(
                f"{clip.name[:28]:28s} {device + ' ' + dtype:13s} {row['initial_db']:6.2f} "
                f"{row['kept_db']:6.2f} {row['free_run_db']:6.2f} {row['check_db']:6.1f} "
                f"{row['fit_cpu_s']:9.1f} {row['fit_wall_s']:7.1f} {row['step_s']:6.3f} "
                f"{row['peak_mib']:8.0f} {gpu:>7s} {row['render_cpu_s']:12.2f}",
                flush=True,
            )
        reference, single = rows.get(("cpu", "float64")), rows.get(("cpu", "float32"))
        if reference and single:
            ratios.append(
                (
                    single["kept_db"] - reference["kept_db"],
                    single["free_run_db"] - reference["free_run_db"],
                    single["fit_cpu_s"] / reference["fit_cpu_s"],
                    single["step_s"] / reference["step_s"],
                    single["peak_mib"] / reference["peak_mib"],
                )
            )
    if ratios:
        print(
            "\nfloat32 - float64 on the CPU, per clip: kept dB, free-run dB; ratios of the fit's "
            "CPU s, of the wall s per step, of the peak memory"
        )
        for kept, free, cpu, step, peak in ratios:
            print(
                f"  {kept:+.3f} dB  {free:+.3f} dB  CPU x{cpu:.2f}  step x{step:.2f}  "
                f"memory x{peak:.2f}"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
