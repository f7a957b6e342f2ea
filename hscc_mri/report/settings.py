"""How big each part of the report is: the full preset and the ``--quick`` one.

Both presets run the same code; only sizes differ. The full preset is budgeted to fit in
60 minutes on 2 CPU cores (see :data:`FULL_TIME_BUDGET`); the quick one exists so CI can
run the whole report end to end in a few minutes, and its numbers mean nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import SettingsError

__all__ = ["FULL_TIME_BUDGET", "PARTS", "PHANTOM_REPORT", "VGG_EVALUATION", "ReportSettings", "SweepPoint", "full_settings", "quick_settings",
           "sweep_grid"]

_ROOT = Path(__file__).resolve().parents[2]
#: The committed VGG16 real-test evaluation the report imports (:mod:`hscc_mri.report.imported`).
VGG_EVALUATION = _ROOT / "reports" / "real" / "evaluate-testing.json"
#: The committed phantom report the real-data report summarises as the synthetic benchmark.
PHANTOM_REPORT = _ROOT / "reports" / "phantoms" / "report.json"

#: The report's parts, in the order they run (``--parts`` picks a subset).
PARTS = ("alexnet", "ablation", "pareto", "vgg")

#: One Pareto sweep setting: ``(regions, clusters, budget, energy)``, exactly one of
#: budget and energy given.
SweepPoint = tuple[tuple[int, int], int, "float | None", "float | None"]


def sweep_grid(regions: tuple[tuple[int, int], ...], clusters: tuple[int, ...], budgets: tuple[float, ...] = (),
               energies: tuple[float, ...] = ()) -> tuple[SweepPoint, ...]:
    """Every combination of ``regions`` x ``clusters`` x (``budgets`` and ``energies``)."""
    return (tuple((r, k, b, None) for r in regions for k in clusters for b in budgets)
            + tuple((r, k, None, e) for r in regions for k in clusters for e in energies))


#: Where the full preset's minutes go on 2 idle CPU cores (planning figures, checked
#: against measured runs; the report states the measured wall time of every part).
FULL_TIME_BUDGET = {
    "AlexNet: load the cached checkpoint (absent or stale: the train command, +14 min phantoms, +20 min real)": 0.5,
    "AlexNet: draw 2,000 test / 800 validation / 1,600 training phantoms, or read as many real scans": 1.0,
    "main table: 6 compressions (HSCC ~0.8 min: eigen-decompositions of the 4096-wide FC layers)": 3.5,
    "main table: 7 distillation fine-tunings (3 epochs x 1,280 images; the original's control included)": 6.0,
    "main table: 13 test-set evaluations + latency benchmarks": 2.0,
    "ablation: 8 extra HSCC compressions (one at 3x) + test evaluations + benchmarks": 8.0,
    "Pareto sweep: 9 extra HSCC compressions + validation evaluations": 7.5,
    "VGG16: 6x only (6 leave-one-scan-out HSCC folds + 1 deployable model), baselines, benchmarks": 8.0,
    "figures, bootstrap, writing": 0.5,
}


@dataclass(frozen=True)
class ReportSettings:
    """Every size and seed of a report run.

    Attributes:
        quick: the tiny preset (numbers meaningless; for CI).
        seed: master seed (phantom splits, calibration, fine-tuning, bootstrap).
        threads: ``torch.set_num_threads`` for the whole run, the benchmarks included.
        parts: which parts to run (see :data:`PARTS`).
        train_overrides: ``(field, value)`` changes to the default
            :class:`~hscc_mri.recipes.TrainRecipe` when the AlexNet has to be trained
            (empty: the train command's own defaults).
        budgets: FLOPs budgets of the main tables.
        alexnet_exclude: AlexNet layers left uncompressed by every method (quick mode leaves the
            4096-wide FC layers alone, whose eigen-decompositions take a minute).
        n_calib: unlabelled training images for HSCC calibration (AlexNet).
        n_finetune: labelled training images for distillation fine-tuning.
        finetune_epochs: distillation epochs, the same for every method.
        n_boot: bootstrap resamples of every standard error.
        bench_runs, bench_warmup: timed and untimed batch-1 runs per model pair.
        ablation: ``(label, overrides)`` rows at the largest budget; ``overrides`` are
            :class:`~hscc_core.config.CompressionConfig` fields changed from the main
            table's HSCC configuration (the compressor's defaults).
        sweep: the Pareto grid (:func:`sweep_grid`); settings already compressed for the
            main table or the ablation are reused, not recomputed.
        vgg_budgets: budgets of the VGG16 table (``None``: ``budgets``).
        vgg_bench_runs: timed batch-1 runs per VGG16 pair (~0.2 s each; the design asks >= 20).
        vgg_scans: how many sample scans the VGG16 part uses (``None``: all).
        vgg_views, vgg_phantoms: calibration views per scan and phantoms (HSCC folds).
        vgg_test_views: augmented views of each held-out scan.
        vgg_evaluation: the ``evaluate --json`` file of the VGG16 on the real test set that
            the report imports (``None``: no such section).
        phantom_report: an earlier phantom report's ``report.json``, summarised as the
            synthetic benchmark when the AlexNet is trained on a folder (``None``: none).
    """

    quick: bool = False
    seed: int = 0
    threads: int = 2
    parts: tuple[str, ...] = PARTS
    train_overrides: tuple[tuple[str, Any], ...] = ()
    budgets: tuple[float, ...] = (3.0, 6.0)
    alexnet_exclude: tuple[str, ...] = ()
    n_calib: int = 256
    n_finetune: int = 1600
    finetune_epochs: int = 3
    n_boot: int = 1000
    bench_runs: int = 30
    bench_warmup: int = 5
    ablation: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
        ("1x1 / K1 (data-aware global)", (("regions", (1, 1)), ("clusters", 1))),
        ("2x2 / K1 (regions only)", (("regions", (2, 2)), ("clusters", 1))),
        ("3x3 / K1", (("regions", (3, 3)), ("clusters", 1))),
        ("1x1 / K4 (clusters only)", (("regions", (1, 1)), ("clusters", 4))),
        ("2x2 / K4", (("regions", (2, 2)), ("clusters", 4))),
        ("3x3 / K4", (("regions", (3, 3)), ("clusters", 4))),
        ("default, uniform allocation", (("allocation", "uniform"),)),
        ("3x, uniform allocation", (("budget", 3.0), ("allocation", "uniform"))),
        ("default, no sequential refit", (("sequential", False),)),
    )
    sweep: tuple[SweepPoint, ...] = (
        sweep_grid(((1, 1), (2, 2), (3, 3)), (1,), budgets=(3.0, 6.0, 9.0))
        + sweep_grid(((1, 1), (2, 2), (3, 3)), (4,), budgets=(6.0,))
        + sweep_grid(((1, 1), (2, 2)), (1,), energies=(0.9, 0.97)))
    #: the six-sample leave-one-scan-out is a small section now (the real test set is the
    #: evidence), so it runs at the top budget only: 8 of the report's minutes, not 16
    vgg_budgets: tuple[float, ...] | None = (6.0,)
    vgg_bench_runs: int = 20
    vgg_scans: int | None = None
    vgg_views: int = 3
    vgg_phantoms: int = 6
    vgg_test_views: int = 4
    vgg_evaluation: str | None = str(VGG_EVALUATION)
    phantom_report: str | None = str(PHANTOM_REPORT)

    def __post_init__(self) -> None:
        unknown = [p for p in self.parts if p not in PARTS]
        if unknown:
            raise SettingsError(f"unknown report part(s) {unknown}; choose from {', '.join(PARTS)}")
        if self.n_boot < 2 or self.bench_runs < 1 or self.threads < 1:
            raise SettingsError(f"need n_boot >= 2, bench_runs >= 1, threads >= 1: {self}")
        if not self.budgets or min(self.budgets) <= 1:
            raise SettingsError(f"budgets must be > 1, got {self.budgets}")

    @property
    def top_budget(self) -> float:
        """The budget of the ablation (the largest main-table budget)."""
        return max(self.budgets)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def full_settings(seed: int = 0, threads: int = 2, parts: tuple[str, ...] = PARTS) -> ReportSettings:
    """The full report (≤ 60 min on 2 cores with a cached AlexNet checkpoint)."""
    return ReportSettings(seed=seed, threads=threads, parts=parts)


def quick_settings(seed: int = 0, threads: int = 2, parts: tuple[str, ...] = PARTS) -> ReportSettings:
    """Tiny sizes, same code path: a few minutes on 2 cores."""
    return replace(
        full_settings(seed, threads, parts), quick=True,
        train_overrides=(("epochs", 1), ("n_train", 96), ("n_val", 32), ("n_test", 64), ("batch_size", 32),
                         ("num_workers", 0), ("val_fraction", 0.25)),
        budgets=(2.0, 3.0), alexnet_exclude=("classifier.*",), n_calib=32, n_finetune=40, finetune_epochs=1,
        n_boot=100, bench_runs=3, bench_warmup=1,
        # Rows pinned to a budget of the full report are swapped for one at a quick budget.
        ablation=tuple(a for a in full_settings().ablation if "budget" not in dict(a[1]))
        + (("2x, uniform allocation", (("budget", 2.0), ("allocation", "uniform"))),),
        sweep=sweep_grid(((1, 1), (2, 2)), (1, 4), budgets=(3.0,)) + sweep_grid(((1, 1), (2, 2)), (1,), energies=(0.9,)),
        vgg_budgets=(3.0,), vgg_bench_runs=3, vgg_scans=2, vgg_views=1, vgg_phantoms=1, vgg_test_views=1,
    )
