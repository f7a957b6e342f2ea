"""Pictures: per layer of a compression, each region of the layer's output grid coloured
by the share of its original compute it kept, annotated with its rank; and for a peer
benchmark (:mod:`hscc_mri.peers`), latency against accuracy with its Pareto front."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import DataError


def region_kept_shares(layer: dict[str, Any]) -> np.ndarray:
    """``(gh, gw)`` shares of each region's original FLOPs that the compressed layer spends.

    A rank-``d`` factor pair costs ``d (D + O)`` multiply-adds per output pixel against
    ``D O`` for the original layer. Layers without per-region ranks (Tucker-2) get their
    measured layer-wide share everywhere.
    """
    gh, gw = len(layer["rows"]) - 1, len(layer["cols"]) - 1
    ranks = layer["ranks"]
    if "in_dim" in layer and len(ranks) == gh * gw and layer.get("method", "") != "tucker":
        d_in, d_out = layer["in_dim"], layer["out_dim"]
        shares = np.array(ranks, dtype=np.float64) * (d_in + d_out) / (d_in * d_out)
    else:
        shares = np.full(gh * gw, layer["flops_compressed"] / max(layer["flops_original"], 1))
    return shares.reshape(gh, gw)


def layer_figure(layer: dict[str, Any], path: str | os.PathLike[str], title: str = "") -> Path:
    """Write one PNG: the layer's region grid (true proportions) coloured by kept compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows, cols = layer["rows"], layer["cols"]
    shares = region_kept_shares(layer)
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(3.6, 3.6 * max(rows[-1], 1) / max(cols[-1], 1) + 0.6), dpi=100)
    for i in range(len(rows) - 1):
        for j in range(len(cols) - 1):
            share = float(shares[i, j])
            ax.add_patch(Rectangle((cols[j], rows[i]), cols[j + 1] - cols[j], rows[i + 1] - rows[i],
                                   facecolor=cmap(min(share, 1.0)), edgecolor="white", linewidth=1.5))
            rank = layer["ranks"][i * (len(cols) - 1) + j] if len(layer["ranks"]) == shares.size else None
            label = f"{share:.0%}" + (f"\nrank {rank}" if rank is not None else "")
            ax.text((cols[j] + cols[j + 1]) / 2, (rows[i] + rows[i + 1]) / 2, label, ha="center", va="center",
                    fontsize=8, color="white" if share < 0.6 else "black")
    ax.set_xlim(0, max(cols[-1], 1))
    ax.set_ylim(max(rows[-1], 1), 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    kept = layer["flops_compressed"] / max(layer["flops_original"], 1)
    ax.set_title(title or f"{layer['name']} ({layer['kind']}): {kept:.0%} of FLOPs kept", fontsize=9)
    fig.colorbar(plt.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=cmap), ax=ax,
                 fraction=0.046, pad=0.04, label="share of compute kept")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def layer_figures(report: dict[str, Any], folder: str | os.PathLike[str]) -> list[Path]:
    """One PNG per compressed layer of a compression report, named after the layer."""
    method = report.get("config", {}).get("method", "")
    return [layer_figure({**layer, "method": method}, Path(folder) / f"{layer['name'].replace('.', '_')}.png")
            for layer in report["layers"]]


def _batch1_ms(row: dict[str, Any]) -> float | None:
    latency = row.get("latency") or {}
    stats = latency.get("1", latency.get(1))
    return None if not stats else stats.get("median_ms")


def pareto_figure(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Write one PNG: latency at batch 1 (x, log scale) against test-set accuracy (y).

    Args:
        rows: rows of :meth:`hscc_mri.peers.PeerBench.rows` (``to_dict()["rows"]``): each
            with ``model``, ``label`` (runtime and precision), ``dense`` (bool),
            ``accuracy`` and ``latency`` (``{"1": {"median_ms": ...}}``). Rows without an
            accuracy or a batch-1 latency are left out.
        path: where the PNG goes (folders are created).
        title: the figure title.

    Every point is labelled with its model and runtime/precision; dense and compressed
    models get different markers and colours; the Pareto front (fastest for its accuracy,
    :func:`hscc_mri.peers.pareto_front`) is drawn as a step line.

    Raises:
        DataError: no row has both an accuracy and a batch-1 latency.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    from hscc_core import pareto_front

    points = [(r, _batch1_ms(r), r.get("accuracy")) for r in rows]
    points = [(r, ms, acc) for r, ms, acc in points if ms is not None and acc is not None and ms > 0]
    if not points:
        raise DataError("no row has both an accuracy and a batch-1 latency (give the bench an evaluation)")
    fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=110)
    styles = {True: ("s", "tab:blue", "dense"), False: ("o", "tab:orange", "compressed")}
    for dense, (marker, colour, name) in styles.items():
        sel = [(ms, acc) for r, ms, acc in points if bool(r.get("dense")) is dense]
        if sel:
            ax.scatter([p[0] for p in sel], [p[1] for p in sel], marker=marker, color=colour, s=46, zorder=3,
                       label=name, edgecolors="black", linewidths=0.5)
    front = pareto_front([(ms, acc) for _, ms, acc in points])
    xs, ys = [points[i][1] for i in front], [points[i][2] for i in front]
    if xs:
        # Best accuracy reachable within a latency: flat until the next slower-but-better
        # point, and on to the slowest point plotted.
        right = max(max(ms for _, ms, _ in points), xs[-1]) * 1.05
        ax.step(xs + [right], ys + [ys[-1]], where="post", color="tab:green", linewidth=1.4, alpha=0.8,
                zorder=2, label="Pareto front")
    # Points of one model share its accuracy (fp32 in every runtime): stagger their labels
    # below one another instead of printing them on top of each other.
    seen: dict[tuple[str, float], int] = {}
    for r, ms, acc in sorted(points, key=lambda p: p[1]):
        k = seen.get((str(r.get("model", "")), round(acc, 4)), 0)
        seen[(str(r.get("model", "")), round(acc, 4))] = k + 1
        text = f"{r.get('model', '')}\n{r.get('label', '')}" if k == 0 else str(r.get("label", ""))
        ax.annotate(text, (ms, acc), textcoords="offset points", xytext=(5, 4 - 10 * k - (8 if k else 0)),
                    fontsize=7)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 40, 50, 60 rather than 4 x 10^1
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("latency at batch 1 (ms, median; log scale)")
    ax.set_ylabel("accuracy on the real test set")
    accs = [acc for _, _, acc in points]
    pad = max(0.01, (max(accs) - min(accs)) * 0.15)
    ax.set_ylim(max(0.0, min(accs) - pad), min(1.0, max(accs) + pad) + 0.005)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "latency vs accuracy", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
