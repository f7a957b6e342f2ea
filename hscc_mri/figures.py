"""Per-layer pictures of a compression: each region of the layer's output grid coloured
by the share of its original compute it kept, annotated with its rank."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


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
