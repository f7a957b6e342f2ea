"""The report's figures (matplotlib, Agg backend, PNG)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["confusion_grid", "pareto_plot", "per_class_bars"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=110)
    _plt().close(fig)
    return path


def pareto_plot(pareto: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validation accuracy vs GFLOPs of every sweep setting, the Pareto front as a step
    line, the recommended setting ringed; baselines and the original for reference."""
    plt = _plt()
    ok = [p for p in pareto["points"] if p["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    regions = sorted({tuple(p["regions"]) for p in ok})
    colours = {r: plt.get_cmap("tab10")(i) for i, r in enumerate(regions)}
    markers = {1: "o", 2: "^", 4: "s", 8: "D"}
    seen = set()
    for p in ok:
        key = (tuple(p["regions"]), p["clusters"], p["energy"] is not None)
        label = f"HSCC {p['regions'][0]}x{p['regions'][1]} K{p['clusters']}" + (" (energy)" if key[2] else "")
        ax.errorbar(p["gflops"], 100 * p["accuracy"], yerr=100 * (p.get("accuracy_se") or 0), fmt="none",
                    ecolor=colours[key[0]], alpha=0.35, capsize=2)
        ax.scatter(p["gflops"], 100 * p["accuracy"], color=colours[key[0]], marker=markers.get(p["clusters"], "P"),
                   facecolors="none" if key[2] else colours[key[0]], s=46, zorder=3,
                   label=None if key in seen else label)
        seen.add(key)
    front = [next(p for p in ok if p["name"] == n) for n in pareto["front"]]
    if front:
        xs = [p["gflops"] for p in front]
        ys = [100 * p["accuracy"] for p in front]
        ax.step(xs, ys, where="post", color="black", lw=1.2, zorder=2, label="Pareto front (HSCC)")
    for b in pareto.get("baselines", []):
        ax.scatter(b["gflops"], 100 * b["accuracy"], marker="x", color="grey" if b["method"] == "svd" else "brown",
                   s=50, zorder=3, label=None if b["method"] + "b" in seen else
                   ("Global SVD" if b["method"] == "svd" else "Tucker-2"))
        seen.add(b["method"] + "b")
    o = pareto.get("original")
    if o:
        ax.axhline(100 * o["accuracy"], color="green", ls="--", lw=1, label=f"original ({o['gflops']:.2f} GFLOPs)")
    rec = next((p for p in ok if p["name"] == pareto.get("recommended")), None)
    if rec:
        ax.scatter(rec["gflops"], 100 * rec["accuracy"], s=220, facecolors="none", edgecolors="red", lw=1.8,
                   zorder=4, label=f"recommended: {rec['name']}")
    ax.set_xlabel("GFLOPs per image (lower is cheaper)")
    ax.set_ylabel("validation accuracy %")
    ax.set_title("AlexNet: accuracy vs compute (filled: budget mode, hollow: energy mode)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def confusion_grid(rows: Sequence[dict[str, Any]], class_names: Sequence[str], path: str | os.PathLike[str],
                   title: str = "") -> Path:
    """One row-normalised confusion matrix per model (counts annotated)."""
    plt = _plt()
    rows = [r for r in rows if r.get("status", "ok") == "ok" and "confusion" in r]
    cols = min(4, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.1 * cols, 3.0 * nrows), squeeze=False)
    short = [c[:5] for c in class_names]
    for ax, r in zip(axes.flat, rows):
        cm = np.asarray(r["confusion"], dtype=np.float64)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(short)), short, fontsize=7, rotation=45)
        ax.set_yticks(range(len(short)), short, fontsize=7)
        ax.set_title(f"{r['name']}\nacc {100 * r['accuracy']:.1f}%", fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.supxlabel("predicted", fontsize=9)
    fig.supylabel("true", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def per_class_bars(rows: Sequence[dict[str, Any]], class_names: Sequence[str], path: str | os.PathLike[str],
                   title: str = "") -> Path:
    """Per-class precision, recall and F1 (F1 with bootstrap SE bars) of several models."""
    plt = _plt()
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(class_names))
    cmap = plt.get_cmap("tab10")
    for ax, metric in zip(axes, ("precision", "recall", "f1")):
        for k, r in enumerate(rows):
            vals = 100 * np.asarray(r[metric])
            err = 100 * np.asarray(r["f1_se"]) if metric == "f1" else None
            ax.bar(x + (k - (len(rows) - 1) / 2) * width, vals, width, yerr=err, capsize=2, color=cmap(k % 10),
                   label=r["name"])
        ax.set_xticks(x, class_names, fontsize=8)
        ax.set_title({"precision": "precision", "recall": "recall", "f1": "F1 (± bootstrap SE)"}[metric], fontsize=9)
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("%")
    handles, labels = axes[0].get_legend_handles_labels()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    return _save(fig, path)
