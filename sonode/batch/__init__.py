"""Fitting and evaluating many clips, here or on a Dask cluster (the only package that imports Dask)."""
