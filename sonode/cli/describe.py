"""`sonode info` and `sonode plot`: what a model is, and a picture of it against its clip."""

from __future__ import annotations

from pathlib import Path

import click

from sonode.cli.common import db, db_text, fail_cleanly, force_option


@click.command()
@click.argument("model", type=click.Path())
@fail_cleanly
def info(model):
    """Print what MODEL is: rate, span, size, fit quality and method."""
    from sonode.api import load
    from sonode.model.train import DISCRETISATION_GOAL_DB

    fitted = load(model)
    cfg, meta = fitted.model.config, fitted.info
    n_params = sum(p.numel() for p in fitted.model.parameters())
    report = meta.get("fit", {})
    lines = [
        f"model:        {model}",
        f"source:       {meta.get('source', {}).get('path', '?')}",
        f"rate:         {cfg.sample_rate} Hz",
        f"span:         0 .. {cfg.n_samples / cfg.sample_rate:.4f} s ({cfg.n_samples} samples)",
    ]
    if hasattr(fitted.model, "track_length"):  # modes that follow the notes
        local = fitted.model
        lines += [
            f"modes:        local: {local.n_tracks} tracks over {cfg.n_nodes} nodes {cfg.hop_samples} "
            f"samples apart ({local.n_entries} node states, at most "
            f"{int(local.entry_nodes().bincount().max())} modes at a node)",
            f"parameters:   {n_params} ({local.stored_numbers()} numbers stored, "
            f"{local.stored_numbers() / cfg.n_samples:.3f} per sample)",
            "solver:       exact (closed-form solution between nodes; continuation: modal)",
        ]
    else:
        lines += [
            f"latent dim:   {cfg.latent_dim} ({cfg.n_modes} damped oscillators + MLP {cfg.layers}x{cfg.hidden})",
            f"segments:     {cfg.layout.n_segments} (hop {cfg.hop_samples}, cross-fade {cfg.overlap_samples} samples)",
            f"parameters:   {n_params}",
            "solver:       modal (exact oscillators, adaptive dopri5 envelope); reference: lawson_rk4",
        ]
    ident = report.get("identification", {}) if report else {}
    if ident.get("continuation"):
        cont = ident["continuation"]
        lines.append(
            f"continuation: linear ODE of {cont['modes']} modes (order {cont['order']}, state from the "
            f"last {cont['window_samples']} samples; validation SNR {db(cont['validation_snr_db'], 1)} dB)"
        )
        if cont.get(
            "switch_after_end_s"
        ):  # models fitted before late modes and fade detection lack these
            lines.append(
                f"              late modes (decays measured on the clip's last second) from "
                f"{1000 * cont['switch_after_end_s']:.0f} ms past the end"
            )
        if cont.get("fade_samples"):
            lines.append(
                f"              the clip's last {cont['fade_samples']} samples are a fade-out: "
                "continued from before it"
            )
    if report:
        lines += [
            f"fit SNR:      {db(report['snr_db'], 2)} dB (initial linear fit {db(report['initial_snr_db'], 2)} dB)",
            (
                _local_storage(fitted.model, report)
                if hasattr(fitted.model, "track_length")
                else f"reference:    discretisation check {db(report['discretisation_snr_db'], 1)} dB "
                f"(fast vs reference solve; goal ≥ {DISCRETISATION_GOAL_DB:.0f})"
            ),
            f"training:     {report['epochs']} steps, gradient {report['gradient']}, stopped by "
            f"{report['stop_reason']}",
            f"trajectory:   one free run from the first state: {db(report.get('trajectory_snr_db'))} dB",
        ]
        held = (report.get("identification") or {}).get("trajectory_cycle")
        if held is not None:  # models fitted before the trajectory's cycle lack it
            lines.append(
                "              trajectory's limit cycle: "
                + (
                    f"yes (held note: {held.get('modes')} modes held, chosen on the held-back "
                    f"last {1000 * held['held_back_s']:.0f} ms of its span)"
                    if held.get("chosen")
                    else "no"
                )
            )
        lines += _training_gains(report)
        if "energy_above_nyquist_db" in report:
            lines.append(
                f"above Nyquist: {db_text(report['energy_above_nyquist_db'])} of the energy when rendered "
                f"at 4x the rate (first 2 s)"
            )
    click.echo("\n".join(lines))


def _training_gains(report: dict) -> list[str]:
    """What training gained over the untrained start, per task (models fitted before lack some)."""

    def gain(new, old) -> str:
        return "?" if new is None or old is None else f"{new - old:+.2f} dB"

    lines = [
        f"gain:         reconstruction {gain(report.get('snr_db'), report.get('initial_snr_db'))}, "
        f"one trajectory {gain(report.get('trajectory_snr_db'), report.get('initial_trajectory_snr_db'))} "
        "(trained - untrained start)"
    ]
    cont = report.get("continuation_training") or {}
    if cont.get("untrained"):
        held_ms = 1000 * cont["held_back_s"]
        untrained, trained = cont["untrained"], cont["trained"]
        horizons = sorted(
            (k for k in untrained if k.startswith("snr_")), key=lambda k: int(k[4:-5])
        )
        per = ", ".join(f"{k[4:-3]} {gain(trained.get(k), untrained[k])}" for k in horizons)
        kept = (
            f"field kept ({cont.get('kept_steps')} steps)"
            if cont.get("field_kept")
            else "field not kept (zero: its level trend over 1-2 s contradicts the identified decays)"
            if cont.get("field_rejected")
            else "field not kept (zero)"
        )
        modes = (
            "modes trained for H-step prediction"
            if cont.get("modes_kept")
            else "modes as identified"
            + (
                " (the whole clip's trained ones contradicted the 1-2 s level trend)"
                if cont.get("modes_rejected") == "level trend"
                else ""
            )
        )
        lines.append(
            f"              continuation on the held-back last {held_ms:.0f} ms: {per}; {modes}; {kept}"
        )
    elif cont.get("skipped"):
        lines.append(f"              continuation not trained: {cont['skipped']}")
    if cont:
        lines.append(
            "              continuation's limit cycle: "
            + ("yes (held note)" if cont.get("cycle") else "no")
        )
    return lines


@click.command()
@click.argument("model", type=click.Path())
@click.option(
    "--clip",
    type=click.Path(),
    help="The original clip (default: the source recorded in the model).",
)
@click.option("-o", "--output", "out", type=click.Path(), required=True, help="PNG file.")
@click.option(
    "--at",
    "centers_s",
    type=float,
    multiple=True,
    help="Centre of a 20 ms waveform zoom (seconds; repeatable). Default: 3 spread over the span.",
)
@force_option
@fail_cleanly
def plot(model, clip, out, centers_s, force):
    """Picture of MODEL: waveform zooms and spectrograms against the clip, the training curve
    (OUT.fit.png) and the learned dynamics (OUT.dynamics.png: decay and frequency of the strongest
    modes against amplitude, for the continuation and the model); for a model fitted with
    --modes local, the mode trajectories over the spectrogram instead (OUT.modes.png)."""
    from sonode.api import load
    from sonode.io.clip import read_clip
    from sonode.io.outputs import OutputPlan
    from sonode.plot.dynamics import save_dynamics_png
    from sonode.plot.figures import save_comparison_png
    from sonode.plot.modes import save_modes_png

    plan = OutputPlan([model, clip], force)
    dynamics = Path(out).with_suffix(".dynamics.png")
    modes = Path(out).with_suffix(".modes.png")
    for path in (out, Path(out).with_suffix(".fit.png"), dynamics, modes):
        plan.add(path, 4 << 20)
    plan.check()
    fitted = load(model)
    if hasattr(fitted.model, "track_length"):  # modes that follow the notes: their trajectories
        save_modes_png(
            modes, fitted.model, fitted.render().samples, f"{Path(model).name}: mode trajectories"
        )
        click.echo(f"wrote {modes}", err=True)
    else:
        save_dynamics_png(dynamics, fitted.model, title=f"{Path(model).name}: learned dynamics")
        click.echo(f"wrote {dynamics}", err=True)
    source = fitted.info.get("source", {})
    clip = clip or source.get("path")
    plan.protect(clip).check()  # the recorded source is read too: never written over
    recon = fitted.render().samples
    duration = fitted.duration_s
    centers = list(centers_s) or [duration * f for f in (0.1, 0.5, 0.9)]
    if clip and Path(clip).exists():
        truth = read_clip(
            clip,
            start_s=float(source.get("start_s", 0.0)),
            duration_s=duration,
            rate=fitted.sample_rate,
            channel=source.get("channel", "mix"),
        ).samples[: recon.shape[0]]
        save_comparison_png(
            out,
            truth,
            {"sonode": recon[: truth.shape[0]]},
            fitted.sample_rate,
            centers,
            title=f"{Path(model).name} vs {Path(clip).name}",
        )
        curve = Path(out).with_suffix(".fit.png")
        if fitted.save_training_curve(curve, title=f"{Path(model).name}: training"):
            click.echo(f"wrote {out} and {curve}", err=True)
        else:
            click.echo(f"wrote {out} (no training curve: the model was not trained)", err=True)
    elif fitted.save_training_curve(out, title=f"{Path(model).name}: training"):
        click.echo(
            f"wrote {out} (training curve only: pass --clip for the waveform comparison)", err=True
        )
    else:
        raise click.UsageError(
            "the model's source clip is not found and it has no training curve: pass --clip"
        )


def _local_storage(model, report: dict) -> str:
    """The local model's storage line: compact (rounded) or float node tables."""
    check = db(report["discretisation_snr_db"], 1)
    if getattr(model, "storage", "") == "quantised":
        rounding = report.get("identification", {}).get("rounding", {})
        cost = rounding.get("cost_db")
        return (
            f"storage:      compact tables, rounding check {check} dB against the unrounded model"
            + (f" (costs {cost:.2f} dB of fit)" if isinstance(cost, (int, float)) else "")
        )
    return (
        f"storage:      float32 check {check} dB (tables rounded to float32 vs float64; the "
        "solution itself is exact)"
    )
