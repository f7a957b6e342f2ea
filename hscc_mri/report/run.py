"""Run the evidence report: REPORT.md, report.json and the figures (``hscc-mri report``)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

from .settings import FULL_TIME_BUDGET, ReportSettings

__all__ = ["DESCRIPTION", "run_report"]

DESCRIPTION = """\
Run every experiment of the evidence report and write OUT/REPORT.md, OUT/report.json
(every number) and OUT/figures/*.png:

  1. AlexNet (phantoms, or --data DIR): original, Global SVD, Tucker-2 and HSCC at each
     budget, each without and with the same distillation fine-tuning; FLOPs, params,
     batch-1 latency, speed-up, accuracy, macro-F1, meningioma F1, agreement with the
     original, with bootstrap standard errors and paired comparisons
  2. the pretrained VGG16 on the real sample scans (leave-one-scan-out fidelity)
  3. ablation of HSCC (regions x clusters, allocation, sequential refit)
  4. Pareto sweep (regions, clusters, budget/energy) on the validation set, with a
     recommended setting chosen by a stated rule
  5. confusion matrices and per-class P/R/F1 figures; 6. seeds, versions, CPU, times

The AlexNet is the train command's checkpoint when it matches the current defaults
(default checkpoints/alexnet-phantoms.safetensors, or checkpoints/alexnet-real.safetensors
with --data); otherwise it is trained with `hscc-mri train` (13+ minutes) and
saved there. --quick runs the same code with tiny sizes (minutes; numbers meaningless).
The full report is budgeted for <= 60 minutes on 2 CPU cores with a cached checkpoint.
"""


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _clean(o: Any) -> Any:
    """JSON-safe copy: NaN/inf become ``None``."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def _figures(results: dict[str, Any], folder: Path) -> list[str]:
    from ..figures import layer_figures
    from . import plots

    written = []
    al = results.get("alexnet", {})
    if "main" in al:
        rows = al["main"]["rows"]
        names = al["data"]["class_names"]
        written.append(plots.confusion_grid(rows, names, folder / "confusion_alexnet.png",
                                            "AlexNet: confusion matrices on the test set (rows: true class)"))
        top = max(r["budget"] for r in rows)
        chosen = [r for r in rows if r["method"] == "original" or r["budget"] == top]
        written.append(plots.per_class_bars(chosen, names, folder / "per_class_alexnet.png",
                                            f"AlexNet: per-class metrics, original and {top:g}x rows (test set)"))
        for name, report in al["main"].get("hscc_reports", {}).items():
            written += layer_figures(report, folder / "layers" / name)
    if "pareto" in al:
        written.append(plots.pareto_plot(al["pareto"], folder / "pareto_alexnet.png"))
    return [str(Path(p).relative_to(folder.parent)) for p in written]


def run_report(settings: ReportSettings, out: str | Path, data: str = "phantoms", checkpoint: str | None = None,
               progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the parts of ``settings`` and write ``out/REPORT.md``, ``report.json``, ``figures/``.

    Args:
        settings: sizes and seeds (:func:`full_settings` / :func:`quick_settings`).
        out: output folder (created).
        data: ``"phantoms"`` or a four-class data-set folder for the AlexNet parts.
        checkpoint: where the AlexNet is cached (default: see ``report --help``).
        progress: tqdm bars on stderr.

    Returns:
        The results dict written to ``report.json``.
    """
    import torch

    from . import document
    from .provenance import PartTimer, environment

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(settings.threads)
    timer = PartTimer()
    results: dict[str, Any] = {"settings": settings.to_dict(), "started_at": timer.started_at,
                               "environment": environment(), "seconds": timer.seconds,
                               "time_plan_minutes": dict(FULL_TIME_BUDGET)}
    alexnet_parts = [p for p in settings.parts if p != "vgg"]
    if alexnet_parts:
        results["alexnet"] = _alexnet(settings, out, data, checkpoint, timer, progress, log)
        kind = "phantoms" if data == "phantoms" else "data"
        results["seeds"] = {"master": settings.seed, **{f"{kind} {k}": v for k, v in
                                                         results["alexnet"]["data"]["seeds"].items()}}
    else:
        results["seeds"] = {"master": settings.seed}
    results.update(_imported_sections(settings.vgg_evaluation, settings.phantom_report, data))
    if "vgg" in settings.parts:
        from .realscans import vgg_table

        with timer.part("VGG16 on real scans"):
            results["vgg"] = vgg_table(settings, progress=progress, log=log)
    with timer.part("figures"):
        results["figures"] = _figures(results, out / "figures")
    results["seconds_total"] = timer.total
    results["environment"]["load_average_end"] = environment()["load_average"]
    (out / "REPORT.md").write_text(document.render(results))
    (out / "report.json").write_text(json.dumps(_clean(results), indent=1, default=_json_default))
    log(f"wrote {out / 'REPORT.md'}, {out / 'report.json'} and {len(results['figures'])} figures "
        f"in {results['seconds_total'] / 60:.1f} min")
    return results


def _imported_sections(vgg_evaluation: str | None, phantom_report: str | None, data: str) -> dict[str, Any]:
    """The sections read from committed files (:mod:`hscc_mri.report.imported`): the VGG16
    real-test evaluation, and the phantom benchmark when the AlexNet was trained on a folder."""
    from .imported import load_phantom_report, load_vgg_evaluation

    out: dict[str, Any] = {}
    if vgg_evaluation:
        out["vgg_real"] = load_vgg_evaluation(vgg_evaluation)
    if phantom_report and data != "phantoms":
        out["phantoms"] = load_phantom_report(phantom_report)
    return out


def render_again(out: str | Path, log: Callable[[str], None] | None = None) -> Path:
    """Write ``out/REPORT.md`` again from ``out/report.json``, measuring nothing.

    For a change of the report's wording: the numbers stay those of the run that wrote
    ``report.json``. The imported sections (VGG16 real test, phantom benchmark) are read
    again from the files that run cited, so their paths and hashes are current.
    """
    from . import document

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(out)
    results = json.loads((out / "report.json").read_text())
    settings = results["settings"]
    source = ((results.get("alexnet") or {}).get("data") or {}).get("source", "phantoms")
    results.update(_imported_sections(settings.get("vgg_evaluation"), settings.get("phantom_report"), source))
    (out / "REPORT.md").write_text(document.render(results))
    (out / "report.json").write_text(json.dumps(_clean(results), indent=1, default=_json_default))
    log(f"rewrote {out / 'REPORT.md'} from {out / 'report.json'} (no measurement)")
    return out / "REPORT.md"


def _alexnet(settings: ReportSettings, out: Path, data: str, checkpoint: str | None, timer, progress: bool,
             log: Callable[[str], None]) -> dict[str, Any]:
    from models import build_model

    from .data import load_data, obtain_alexnet, train_recipe
    from .experiments import AlexNetLab, run_alexnet_parts

    trust = checkpoint is not None
    if checkpoint is None:
        if settings.quick:
            checkpoint = str(out / "checkpoints" / ("alexnet-quick-phantoms.safetensors" if data == "phantoms"
                                                    else "alexnet-quick-data.safetensors"))
        else:
            checkpoint = ("checkpoints/alexnet-phantoms.safetensors" if data == "phantoms"
                          else "checkpoints/alexnet-real.safetensors")
    recipe = train_recipe(data, checkpoint, settings.seed, settings.threads, settings.train_overrides)
    spec = build_model(recipe.model, pretrained=False).spec
    with timer.part("AlexNet data"):
        bundle = load_data(spec, recipe, settings.n_calib, settings.n_finetune)
    with timer.part("AlexNet checkpoint (load or train)"):
        model, info = obtain_alexnet(recipe, bundle.test, log, trust=trust)
    lab = AlexNetLab(model, bundle, settings, progress)
    result: dict[str, Any] = {"model": info, "data": {**bundle.info, "class_names": bundle.class_names}}
    result.update(run_alexnet_parts(lab, settings.parts, timer, log))
    return result
