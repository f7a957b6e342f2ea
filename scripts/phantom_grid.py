"""Write a labelled grid of synthetic MRI phantoms (rows = classes) to a PNG.

    python scripts/phantom_grid.py [--out docs/phantom_grid.png] [--cols 6] [--seed 0]
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from preprocessing.phantoms import PHANTOM_CLASSES, PhantomConfig, phantom_details, phantom_label  # noqa: E402


def collect(cols: int, seed: int, config: PhantomConfig) -> list[list]:
    """The first ``cols`` phantoms of each class in data set ``seed``."""
    rows: list[list] = [[] for _ in PHANTOM_CLASSES]
    index = 0
    while min(len(r) for r in rows) < cols:
        label = phantom_label(index, seed)
        if len(rows[label]) < cols:
            rows[label].append(phantom_details(index, seed, config))
        index += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/phantom_grid.png"))
    parser.add_argument("--cols", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--hard-fraction", type=float, default=PhantomConfig().hard_fraction)
    args = parser.parse_args(argv)
    config = PhantomConfig(size=args.size, hard_fraction=args.hard_fraction)
    rows = collect(args.cols, args.seed, config)
    fig, axes = plt.subplots(len(rows), args.cols, figsize=(2.1 * args.cols, 2.3 * len(rows)), squeeze=False)
    for r, samples in enumerate(rows):
        for c, s in enumerate(samples):
            ax = axes[r][c]
            ax.imshow(s.image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{s.view} {s.contrast}{' hard' if s.hard else ''}", fontsize=7)
            if c == 0:
                ax.set_ylabel(PHANTOM_CLASSES[r], fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    buffer.seek(0)
    Image.open(buffer).convert("L").save(args.out, optimize=True)  # grey: a quarter of the size
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
