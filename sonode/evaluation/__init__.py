"""Scoring sonode against the classical baselines: baseline registries, `sonode eval` harnesses."""
