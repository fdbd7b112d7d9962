"""The descriptive metadata ("info") a model file carries beside its tensors: what is left out when
saving (timings, so that a file does not depend on the machine's speed) and what is kept when
loading (only parts of the types sonode writes: a crafted or damaged file may hold anything)."""

from __future__ import annotations

import math
from typing import Any

# (and the fit report's memory figures: the measured peak depends on the machine as timings do)
TIMING_KEYS = ("wall_time_s", "seconds_per_epoch", "elapsed_s", "time_breakdown_s", "memory_mib")


def without_timings(value: Any) -> Any:
    """A copy of nested dicts/lists without the keys in TIMING_KEYS."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def checked_info(info: Any) -> dict[str, Any]:
    """``info`` with every part of unexpected type dropped: "source" keeps a str path, a channel
    ("mix" or an int ≥ 0) and a finite start ≥ 0; "fit" is kept if it is an object whose figures
    are numbers (or null) and whose texts are strings; "history" if it is a list of such records."""
    if not isinstance(info, dict):
        return {}
    out = dict(info)
    source = info.get("source")
    if isinstance(source, dict):
        clean = {
            k: v
            for k, v in source.items()
            if isinstance(v, (str, int, float)) and not isinstance(v, bool)
        }
        if not isinstance(clean.get("path"), str):
            clean.pop("path", None)
        channel = clean.get("channel", "mix")
        if not (channel == "mix" or (isinstance(channel, int) and channel >= 0)):
            clean.pop("channel")
        start = clean.get("start_s", 0.0)
        if not (isinstance(start, (int, float)) and math.isfinite(start) and start >= 0):
            clean.pop("start_s")
        out["source"] = clean
    else:
        out.pop("source", None)
    fit = info.get("fit")
    if _plain_report(fit, _REQUIRED_REPORT_KEYS):
        ident = fit.get("identification")
        cont = ident.get("continuation") if isinstance(ident, dict) else None
        if ident is not None and not (
            isinstance(ident, dict) and (cont is None or _plain_report(cont, _CONTINUATION_KEYS))
        ):
            out["fit"] = {k: v for k, v in fit.items() if k != "identification"}
    else:
        out.pop("fit", None)
    history = info.get("history")
    if not (
        isinstance(history, list)
        and all(_plain_report(r, ("epoch", "loss", "snr_db")) for r in history)
    ):
        out.pop("history", None)
    return out


_REPORT_TEXT_KEYS = ("gradient", "stop_reason", "estimator")


_REQUIRED_REPORT_KEYS = (
    "snr_db",
    "initial_snr_db",
    "discretisation_snr_db",
    "epochs",
    "gradient",
    "stop_reason",
)


_CONTINUATION_KEYS = ("modes", "order", "window_samples", "validation_snr_db")


def _plain_report(report: Any, required: tuple[str, ...]) -> bool:
    """A fit report or record as sonode writes it: the ``required`` keys present, figures numbers
    (or null), texts strings."""
    if not isinstance(report, dict) or any(k not in report for k in required):
        return False
    for key, value in report.items():
        if key in _REPORT_TEXT_KEYS:
            if not isinstance(value, str):
                return False
        elif key.endswith(("_db", "_s", "_samples")) or key in (
            "epochs",
            "epoch",
            "loss",
            "modes",
            "order",
        ):
            if value is not None and not (
                isinstance(value, (int, float)) and not isinstance(value, bool)
            ):
                return False
    return True
