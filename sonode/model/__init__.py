"""The audio model: identified oscillator bank + neural correction, its initialisation and training."""

from sonode.model.decoder import ModelConfig, SonodeModel
from sonode.model.train import EpochRecord, FitOptions, FitReport, fit_samples

__all__ = ["SonodeModel", "ModelConfig", "FitOptions", "FitReport", "EpochRecord", "fit_samples"]
