"""The evidence report: ``python -m hscc_core report`` (issue 4).

Modules, one job each: :mod:`.settings` (sizes of the full and quick presets),
:mod:`.data` (the AlexNet and its images), :mod:`.experiments` (AlexNet main table,
ablation, Pareto sweep), :mod:`.realscans` (VGG16 on real scans), :mod:`.analysis`
(paired bootstrap, Pareto front, recommendation), :mod:`.tables` (markdown),
:mod:`.plots` (PNG figures), :mod:`.document` (REPORT.md), :mod:`.provenance` (seeds,
versions, CPU, wall times) and :mod:`.cli` (the ``report`` subcommand).
"""
from __future__ import annotations

from .cli import add_report_parser, run_report
from .settings import ReportSettings, full_settings, quick_settings

__all__ = ["ReportSettings", "add_report_parser", "full_settings", "quick_settings", "run_report"]
