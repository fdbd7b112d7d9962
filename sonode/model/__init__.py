"""The audio model: identified oscillator bank + neural correction, its initialisation and training.

The names below are imported on first use, so that a submodule that needs no torch
(`sonode.model.fit_size`: how large a fit may be) can be imported without it, e.g. by a batch's
parent process, which only plans the fits its workers run (#30: its memory counts in the batch's).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sonode.model.decoder import ModelConfig, SonodeModel
    from sonode.model.options import EpochRecord, FitOptions, FitReport
    from sonode.model.train import fit_samples

__all__ = ["SonodeModel", "ModelConfig", "FitOptions", "FitReport", "EpochRecord", "fit_samples"]
_HOMES = {
    "SonodeModel": "decoder",
    "ModelConfig": "decoder",
    "FitOptions": "options",
    "FitReport": "options",
    "EpochRecord": "options",
    "fit_samples": "train",
}


def __getattr__(name: str):
    if name in _HOMES:
        from importlib import import_module

        value = getattr(import_module(f"sonode.model.{_HOMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sonode.model' has no attribute {name!r}")
