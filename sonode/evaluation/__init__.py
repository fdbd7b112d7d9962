"""Evaluation: scoring sonode against the classical baselines (baseline registries, `sonode eval` harnesses)
and the listening report (`report`, `report_media`, `report_page`, `report_run`)."""
