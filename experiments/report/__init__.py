"""The guarantee report of ``unfoldkit check``: ``build_report`` computes it (build.py), ``write_report``
renders report.json, report.md and a self-contained report.html (render.py)."""
from unfoldkit.experiments.report.build import CheckInputs, build_report, report_exit_code
from unfoldkit.experiments.report.render import write_report

__all__ = ["CheckInputs", "build_report", "report_exit_code", "write_report"]
