"""The AlexNet experiments of the report: main table, ablation, Pareto sweep.

Each returns plain dicts (rows, points, comparisons). Compressions are cached by their
configuration, so a setting that appears in several parts is compressed once; a
configuration the compressor refuses (e.g. channel clusters while they are not
implemented) becomes a row marked ``not available`` with the compressor's message, and
starts working here as soon as the compressor supports it.
"""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
from torch import nn

from hscc_core import (CompressionConfig, FinetuneConfig, bench_pair, classification_report, compress,
                       count_flops, count_params, distill, fidelity)
from hscc_core.progress import progress_bar

from ..training import predict_proba
from .analysis import ORIGINAL_KD, bootstrap_se, paired_difference, recommend, verdict
from .data import DataBundle
from .settings import ReportSettings

__all__ = ["METHOD_NAMES", "ORIGINAL_KD", "AlexNetLab", "ablation", "config_label", "main_table", "pareto_sweep"]

METHOD_NAMES = {"svd": "Global SVD", "tucker": "Tucker-2", "hscc": "HSCC"}
#: The class whose F1 the main table shows (the hard one).
FOCUS_CLASS = "meningioma"
#: Errors by which the compressor refuses a configuration it does not support.
UNSUPPORTED = (ValueError, NotImplementedError)


def config_label(cfg: dict[str, Any]) -> str:
    """``"2x2 / K1, 6x"``-style short name of an HSCC configuration dict."""
    gh, gw = cfg["regions"]
    size = f"{cfg['budget']:g}x" if cfg.get("budget") else f"energy {cfg['energy']:g}"
    extras = [] if cfg.get("allocation", "greedy") == "greedy" else [f"{cfg['allocation']} allocation"]
    if not cfg.get("sequential", True):
        extras.append("no refit")
    return f"{gh}x{gw} / K{cfg['clusters']}, {size}" + (f" ({', '.join(extras)})" if extras else "")


def _key(config: CompressionConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


class AlexNetLab:
    """One trained model, its images, and every compression of it measured alike.

    Args:
        model: the trained (uncompressed) model, eval mode.
        data: test/validation/calibration/fine-tuning images.
        settings: sizes and seeds.
        progress: show progress bars.
    """

    def __init__(self, model: nn.Module, data: DataBundle, settings: ReportSettings, progress: bool = True) -> None:
        self.model, self.data, self.settings, self.progress = model.eval(), data, settings, progress
        self.num_classes = len(data.class_names)
        self.focus = data.class_names.index(FOCUS_CLASS) if FOCUS_CLASS in data.class_names else None
        self._compressed: dict[str, tuple[nn.Module, dict[str, Any]]] = {}
        self._probs: dict[tuple[str, str], np.ndarray] = {}
        self.labels = {"test": data.test.tensors[1].numpy(), "val": data.val.tensors[1].numpy()}
        self.reference = {split: self.probabilities(self.model, split, "original") for split in ("test", "val")}
        self.predictions: dict[tuple[str, str], np.ndarray] = {}  # (split, row name) -> labels
        self.original_latency_ms: list[float] = []

    # ------------------------------------------------------------------ building blocks
    def config(self, method: str, budget: float | None = None, energy: float | None = None,
               **overrides: Any) -> CompressionConfig:
        """The report's configuration of ``method`` (compressor defaults unless overridden).

        Raises:
            CompressionError: the compressor refuses the configuration.
        """
        return CompressionConfig(method=method, budget=budget, energy=energy,
                                 exclude=tuple(self.settings.alexnet_exclude), seed=self.settings.seed,
                                 **overrides)

    def compress(self, config: CompressionConfig) -> tuple[nn.Module, dict[str, Any]]:
        """Compress (once per configuration) and return the model and its report dict."""
        key = _key(config)
        if key not in self._compressed:
            calib = self.data.calibration if config.method == "hscc" else None
            model, report = compress(self.model, calib, config, progress=self.progress, name=self.model.spec.name)
            self._compressed[key] = (model, report.to_dict())
        return self._compressed[key]

    def probabilities(self, model: nn.Module, split: str, key: str | None = None) -> np.ndarray:
        """Softmax outputs on ``split`` (``"test"`` or ``"val"``), cached under ``key``."""
        if key is not None and (key, split) in self._probs:
            return self._probs[(key, split)]
        dataset = self.data.test if split == "test" else self.data.val
        probs, _ = predict_proba(model, dataset, 64)
        if key is not None:
            self._probs[(key, split)] = probs
        return probs

    def classification(self, probs: np.ndarray, split: str) -> dict[str, Any]:
        """Accuracy, macro-F1, per-class P/R/F1, confusion (bootstrap SEs) and agreement
        with the original model (top-1, its bootstrap SE, mean KL)."""
        s = self.settings
        y, pred = self.labels[split], probs.argmax(1)
        rep = classification_report(y, pred, self.data.class_names, n_bootstrap=s.n_boot, seed=s.seed).to_dict()
        ref = self.reference[split]
        agree = (pred == ref.argmax(1)).astype(np.float64)
        rep.update(fidelity(ref, probs), agreement_se=bootstrap_se(agree, s.n_boot, s.seed))
        if self.focus is not None:
            rep.update(focus_class=FOCUS_CLASS, focus_f1=rep["f1"][self.focus], focus_f1_se=rep["f1_se"][self.focus])
        return rep

    def bench(self, compressed: nn.Module) -> dict[str, Any]:
        """Batch-1 latency of the original and ``compressed``, interleaved (``bench_pair``)."""
        s = self.settings
        res = bench_pair(self.model, compressed, batch_sizes=(1,), runs=s.bench_runs, warmup=s.bench_warmup,
                         threads=s.threads, channels_last=True, progress=self.progress).to_dict()
        self.original_latency_ms.append(res["model_a"]["latency"][0]["median_ms"])
        lat = res["model_b"]["latency"][0]
        return {"latency_ms": lat["median_ms"], "latency_p90_ms": lat["p90_ms"],
                "original_latency_ms": res["model_a"]["latency"][0]["median_ms"],
                "speedup": res["speedup"]["1"], "efficiency": res["efficiency"]["1"], "bench_runs": lat["runs"]}

    def measure(self, name: str, model: nn.Module, report: dict[str, Any] | None, split: str = "test",
                bench: bool = True, key: str | None = None) -> dict[str, Any]:
        """One table row: cost (FLOPs, params, latency) and quality of ``model`` on ``split``."""
        flops_orig = report["flops_original"] if report else count_flops(self.model)
        flops = report["flops_compressed"] if report else flops_orig
        probs = self.probabilities(model, split, key)
        self.predictions[(split, name)] = probs.argmax(1)
        row: dict[str, Any] = {
            "name": name, "status": "ok", "split": split,
            "flops": flops, "gflops": flops / 1e9, "flops_reduction": 1 - flops / flops_orig,
            "flops_ratio": flops_orig / flops,
            "params": report["params_compressed"] if report else count_params(self.model),
            **self.classification(probs, split),
        }
        if report:
            row.update(config=report["config"], compress_seconds=report["seconds"].get("total"),
                       peak_memory_mb=report["peak_memory_mb"], ranks={l["name"]: l["ranks"] for l in report["layers"]})
        if bench and report:
            row.update(self.bench(model))
        return row

    def compare(self, split: str, name_a: str, name_b: str) -> dict[str, Any]:
        """Paired bootstrap difference ``a - b`` of two measured rows on ``split``."""
        s = self.settings
        diff = paired_difference(self.labels[split], self.predictions[(split, name_a)],
                                 self.predictions[(split, name_b)], self.num_classes, s.n_boot, s.seed, self.focus)
        for d in diff.values():
            d["verdict"] = verdict(d["diff"], d["se"])
        return {"a": name_a, "b": name_b, "split": split, **diff}


def _unavailable(name: str, error: Exception, **fields: Any) -> dict[str, Any]:
    return {"name": name, "status": "not available", "error": f"{type(error).__name__}: {error}", **fields}


def _row_name(method: str, budget: float, finetuned: bool) -> str:
    return f"{METHOD_NAMES[method]} {budget:g}x" + (" + KD" if finetuned else "")


# ----------------------------------------------------------------------------- parts
def main_table(lab: AlexNetLab, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Original, then Global SVD / Tucker-2 / HSCC at every budget, each without and with
    the same distillation fine-tuning; and the paired comparisons the text states."""
    s = lab.settings
    ft_config = FinetuneConfig(epochs=s.finetune_epochs, seed=s.seed)
    original = lab.measure("original", lab.model, None, bench=False, key="original")
    # The control the paper lacks: the original given the same fine-tuning, so that a gain
    # from extra training is not credited to compression.
    tuned = copy.deepcopy(lab.model)
    tuned_record = distill(tuned, lab.model, lab.data.finetune, ft_config, progress=lab.progress)
    tuned_row = {"method": "original", "budget": 1.0, "finetuned": True, "finetune": tuned_record,
                 **lab.measure(ORIGINAL_KD, tuned.eval(), None, bench=False)}
    rows = [original, tuned_row]
    reports = {}
    jobs = [(m, b) for m in ("svd", "tucker", "hscc") for b in s.budgets]
    for method, budget in progress_bar(jobs, desc="main table", unit="model", disable=not lab.progress):
        config = lab.config(method, budget)
        compressed, report = lab.compress(config)
        name = _row_name(method, budget, False)
        if method == "hscc":
            reports[f"hscc-{budget:g}x"] = report
        log(f"main table: {name} ({report['flops_compressed'] / 1e9:.3f} GFLOPs)")
        rows.append({"method": method, "budget": budget, "finetuned": False,
                     **lab.measure(name, compressed, report, key=_key(config))})
        student = copy.deepcopy(compressed)
        record = distill(student, lab.model, lab.data.finetune, ft_config, progress=lab.progress)
        rows.append({"method": method, "budget": budget, "finetuned": True, "finetune": record,
                     **lab.measure(_row_name(method, budget, True), student, report)})
    original.update(method="original", budget=1.0, finetuned=False, latency_ms=float(np.median(lab.original_latency_ms)),
                    speedup=1.0, efficiency=1.0)
    tuned_row.update(latency_ms=original["latency_ms"], speedup=1.0, efficiency=1.0)  # same architecture
    comparisons = []
    for budget in s.budgets:
        for ft in (False, True):
            hscc = _row_name("hscc", budget, ft)
            for base in ("svd", "tucker"):
                comparisons.append(lab.compare("test", hscc, _row_name(base, budget, ft)))
            comparisons.append(lab.compare("test", hscc, "original"))
            if ft:
                comparisons.append(lab.compare("test", hscc, ORIGINAL_KD))
    return {"rows": rows, "comparisons": comparisons, "finetune_config": ft_config.__dict__, "hscc_reports": reports,
            "hscc_config": lab.config("hscc", s.top_budget).to_dict()}


def ablation(lab: AlexNetLab, log: Callable[[str], None] = print) -> dict[str, Any]:
    """HSCC at the largest budget with one thing changed per row (test set, no fine-tuning)."""
    s = lab.settings
    base = lab.config("hscc", s.top_budget)
    rows = []
    for label, overrides in progress_bar(s.ablation, desc="ablation", unit="row", disable=not lab.progress):
        fields = dict(overrides)
        try:
            config = replace(base, **fields)
            compressed, report = lab.compress(config)
        except UNSUPPORTED as e:
            log(f"ablation: {label}: not available ({e})")
            rows.append(_unavailable(label, e, overrides=fields))
            continue
        name = f"ablation: {label}"
        row = lab.measure(name, compressed, report, key=_key(config))
        rows.append({**row, "name": label, "overrides": fields, "setting": config_label(config.to_dict())})
        lab.predictions[("test", label)] = lab.predictions.pop(("test", name))
    ok = [r for r in rows if r["status"] == "ok"]
    reference = next((r["name"] for r in ok if r["config"] == base.to_dict()), None)
    if reference is None:  # the main table's HSCC setting is not among the rows: measure it too
        compressed, report = lab.compress(base)
        reference = "default (main-table HSCC)"
        row = lab.measure(reference, compressed, report, key=_key(base))
        rows.insert(0, {**row, "overrides": {}, "setting": config_label(base.to_dict())})
        ok.insert(0, rows[0])
    # A row at another budget (e.g. uniform allocation at 3x) is compared with the default
    # setting at *its* budget, measured here when it is not already a row.
    references = {base.budget: reference}
    for r in list(ok):
        b = r["config"]["budget"]
        if b is None or b in references:
            continue
        default_b = replace(base, budget=b)
        twin = next((q["name"] for q in ok if q["config"] == default_b.to_dict()), None)
        if twin is None:
            compressed, report = lab.compress(default_b)
            twin = f"default, {b:g}x"
            row = lab.measure(twin, compressed, report, key=_key(default_b))
            rows.append({**row, "name": twin, "overrides": {"budget": b}, "setting": config_label(default_b.to_dict())})
            ok.append(rows[-1])
        references[b] = twin
    comparisons = []
    for r in ok:
        ref = references.get(r["config"]["budget"])
        if ref is not None and r["name"] != ref:
            comparisons.append({**lab.compare("test", r["name"], ref), "reference": ref})
    identical = []
    for r in ok:  # K > 1 that changed nothing is reported as such
        if r["config"]["clusters"] > 1:
            twin = next((q for q in ok if q["config"] == {**r["config"], "clusters": 1}), None)
            if twin is not None and r["ranks"] == twin["ranks"] and r["accuracy"] == twin["accuracy"] \
                    and r["mean_kl"] == twin["mean_kl"]:
                identical.append({"row": r["name"], "same_as": twin["name"]})
    return {"rows": rows, "base_config": base.to_dict(), "reference": reference, "comparisons": comparisons,
            "identical_to_k1": identical}


def _sweep_configs(lab: AlexNetLab) -> list[tuple[dict[str, Any], Callable[[], CompressionConfig]]]:
    out = []
    for regions, clusters, budget, energy in lab.settings.sweep:
        desc = {"regions": list(regions), "clusters": clusters, "budget": budget, "energy": energy}
        out.append((desc, lambda r=regions, k=clusters, b=budget, e=energy:
                    lab.config("hscc", b, e, regions=tuple(r), clusters=k)))
    return out


def pareto_sweep(lab: AlexNetLab, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Regions x clusters x budget/energy on the validation set; the Pareto front of
    accuracy vs GFLOPs; the recommended setting (rule in :func:`analysis.recommend`) and
    its test-set numbers; the baselines and the original on the same validation set."""
    s = lab.settings
    points: list[dict[str, Any]] = []
    configs: dict[str, CompressionConfig] = {}
    for desc, make in progress_bar(_sweep_configs(lab), desc="Pareto sweep", unit="setting", disable=not lab.progress):
        label = f"{desc['regions'][0]}x{desc['regions'][1]} / K{desc['clusters']}, " + (
            f"{desc['budget']:g}x" if desc["budget"] else f"energy {desc['energy']:g}")
        try:
            config = make()
            compressed, report = lab.compress(config)
        except UNSUPPORTED as e:
            points.append(_unavailable(label, e, **desc))
            continue
        probs = lab.probabilities(compressed, "val", _key(config))
        q = lab.classification(probs, "val")
        configs[label] = config
        points.append({"name": label, "status": "ok", **desc, "config": config.to_dict(),
                       "gflops": report["flops_compressed"] / 1e9,
                       "flops_reduction": 1 - report["flops_compressed"] / report["flops_original"],
                       "accuracy": q["accuracy"], "accuracy_se": q["accuracy_se"], "macro_f1": q["macro_f1"],
                       "macro_f1_se": q["macro_f1_se"], "agreement": q["agreement"], "mean_kl": q["mean_kl"]})
    ok = [p for p in points if p["status"] == "ok"]
    rec = recommend(ok)
    result: dict[str, Any] = {"points": points, "split": "val",
                              "front": [ok[i]["name"] for i in rec["front"]],
                              "rule": {k: ([ok[i]["name"] for i in v] if isinstance(v, list) else v)
                                       for k, v in rec.items() if k not in ("index", "best")}}
    for p in ok:
        p["pareto"] = p["name"] in result["front"]
    references = []
    for method in ("svd", "tucker"):
        for budget in s.budgets:
            config = lab.config(method, budget)
            compressed, report = lab.compress(config)
            q = lab.classification(lab.probabilities(compressed, "val", _key(config)), "val")
            references.append({"name": f"{METHOD_NAMES[method]} {budget:g}x", "method": method,
                               "gflops": report["flops_compressed"] / 1e9,
                               "flops_reduction": 1 - report["flops_compressed"] / report["flops_original"],
                               "accuracy": q["accuracy"], "accuracy_se": q["accuracy_se"]})
    qo = lab.classification(lab.reference["val"], "val")
    result["original"] = {"name": "original", "gflops": count_flops(lab.model) / 1e9, "accuracy": qo["accuracy"],
                          "accuracy_se": qo["accuracy_se"]}
    result["baselines"] = references
    default = lab.config("hscc", s.top_budget).to_dict()
    result["default"] = next((p["name"] for p in ok if p["config"] == default), None)
    if rec["index"] is not None:
        chosen = ok[rec["index"]]
        result["recommended"] = chosen["name"]
        result["best"] = ok[rec["best"]]["name"]
        config = configs[chosen["name"]]
        compressed, report = lab.compress(config)
        test = lab.measure("recommended", compressed, report, key=_key(config))
        result["recommended_test"] = {k: test[k] for k in ("gflops", "flops_reduction", "accuracy", "accuracy_se",
                                                           "macro_f1", "macro_f1_se", "agreement", "speedup",
                                                           "latency_ms") if k in test}
    return result


def run_alexnet_parts(lab: AlexNetLab, parts: Sequence[str], timer, log: Callable[[str], None] = print
                      ) -> dict[str, Any]:
    """The AlexNet parts named in ``parts`` (``alexnet``, ``ablation``, ``pareto``), timed."""
    out: dict[str, Any] = {}
    if "alexnet" in parts:
        with timer.part("AlexNet main table"):
            out["main"] = main_table(lab, log)
    if "ablation" in parts:
        with timer.part("ablation"):
            out["ablation"] = ablation(lab, log)
    if "pareto" in parts:
        with timer.part("Pareto sweep"):
            out["pareto"] = pareto_sweep(lab, log)
    return out

