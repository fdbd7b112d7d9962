"""The package version (one place; the model files and reports record it)."""

__version__ = "0.1.0"
