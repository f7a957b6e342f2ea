"""The evidence report (``hscc-mri report``).

Modules, one job each: :mod:`.settings` (sizes of the full and quick presets),
:mod:`.data` (the AlexNet and its images), :mod:`.experiments` (AlexNet main table,
ablation, Pareto sweep), :mod:`.realscans` (VGG16 on real scans), :mod:`.analysis`
(paired bootstrap, Pareto front, recommendation), :mod:`.tables` (markdown),
:mod:`.plots` (PNG figures), :mod:`.document` (REPORT.md), :mod:`.provenance` (seeds,
versions, CPU, wall times) and :mod:`.run` (runs the parts and writes the files). The
``report`` command itself is :mod:`hscc_mri.cli.report`.
"""
from __future__ import annotations

from .run import run_report
from .settings import ReportSettings, full_settings, quick_settings

__all__ = ["ReportSettings", "full_settings", "quick_settings", "run_report"]
