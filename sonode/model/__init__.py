"""The audio model: identified oscillator bank + neural correction, its initialisation and training."""

from sonode.model.decoder import ModelConfig, SonodeModel
from sonode.model.options import EpochRecord, FitOptions, FitReport
from sonode.model.train import fit_samples

__all__ = ["SonodeModel", "ModelConfig", "FitOptions", "FitReport", "EpochRecord", "fit_samples"]
