"""Figures (PNG); the only package that imports matplotlib."""
