"""`Fitted.report`: the fit report as a typed `FitReport`; `info` stays for old scripts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import sonode
from sonode.api import Fitted
from sonode.model import EpochRecord, FitReport

MODEL = Path(__file__).parent / "data" / "model_d8155b1.sonode"


def test_a_saved_model_reports_its_fit_as_a_typed_object():
    fitted = sonode.load(MODEL)
    report = fitted.report
    assert isinstance(report, FitReport)
    fit = fitted.info["fit"]
    assert report.snr_db == fit["snr_db"] and report.epochs == fit["epochs"] == 5
    assert report.stop_reason == "steps" and report.gradient == "adjoint"
    assert report.options == fit["options"] and report.identification["n_modes"] == 4
    assert report.energy_above_nyquist_db == fit["energy_above_nyquist_db"]
    # wall-clock figures are left out of model files: nan, not a made-up 0
    assert math.isnan(report.wall_time_s) and math.isnan(report.seconds_per_epoch)
    assert [r.epoch for r in report.history] == [1, 2, 3, 4, 5]
    assert all(isinstance(r, EpochRecord) and math.isnan(r.elapsed_s) for r in report.history)
    assert report.history[0].snr_db == fitted.info["history"][0]["snr_db"]


def test_the_report_round_trips_through_its_dict_form():
    report = FitReport(
        options={"steps": 3},
        gradient="adjoint",
        initial_snr_db=10.0,
        snr_db=math.inf,
        discretisation_snr_db=80.0,
        epochs=3,
        wall_time_s=1.5,
        seconds_per_epoch=0.5,
        function_evaluations=12,
        rejected_steps=0,
        stop_reason="steps",
        history=[EpochRecord(1, 0.5, 9.0, 0.4)],
        identification={"n_modes": 2},
    )
    data = report.as_dict()
    history = data.pop("history")
    again = FitReport.from_dict(data, history)
    assert math.isnan(again.snr_db)  # as_dict writes +inf as None: it comes back as "not a number"
    assert again.history == report.history
    assert {k: v for k, v in vars(again).items() if k != "snr_db" and v == v} == {
        k: v for k, v in vars(report).items() if k != "snr_db" and v == v
    }


def test_no_report_is_a_clear_error():
    fitted = sonode.load(MODEL)
    with pytest.raises(ValueError, match="no fit report"):
        _ = Fitted(fitted.model, {}).report
    with pytest.raises(ValueError, match="lacks 'stop_reason'"):
        FitReport.from_dict({k: v for k, v in fitted.info["fit"].items() if k != "stop_reason"})
