"""Evaluation: scoring sonode against baselines and the listening report (report, report_page)."""
