"""How robust is a trained AlexNet to the ways the two copies of the real data set differ?

The data set's README: ``Training/`` is a copy resized to 224 px and re-encoded, with its
intensities changed; ``Testing/`` holds the original files (most 512 px, sharper). Choices
may only be made on a validation split of ``Training/``, so this probe perturbs the train
command's own validation scans (never ``Testing/``) in the directions of that shift —
sharper, softer, brighter or darker mid-tones, upsampled, noisier — and reports the
accuracy of each model under each perturbation. The training augmentation
(:mod:`hscc_mri.batch_augment`) was chosen with it.

    python scripts/alexnet_shift_probe.py --data ../shared/data/brain-mri \\
        --models runs/alexnet-no-sharpen.safetensors checkpoints/alexnet-real.safetensors \\
        --json reports/real/alexnet_shift_probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hscc_mri.recipes import TrainRecipe  # noqa: E402
from hscc_mri.resolve import load_model  # noqa: E402
from preprocessing.datasets import BrainMRIFolder, stratified_split  # noqa: E402
from preprocessing.transforms import model_window, to_model_input  # noqa: E402


def _sharpen(x: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    return np.clip(x + amount * (x - cv2.GaussianBlur(x, (0, 0), sigma)), 0.0, 1.0)


#: name -> perturbation of a ``[0, 1]`` slice at its stored resolution (224 px).
SHIFTS = {
    "none": lambda x: x,
    "sharpen 1.0 (sigma 1 px)": lambda x: _sharpen(x, 1.0, 1.0),
    "sharpen 2.0 (sigma 1.5 px)": lambda x: _sharpen(x, 2.0, 1.5),
    "blur (sigma 1 px)": lambda x: cv2.GaussianBlur(x, (0, 0), 1.0),
    "gamma 0.7": lambda x: x ** 0.7,
    "gamma 1.4": lambda x: x ** 1.4,
    "upsampled to 512 px (cubic)": lambda x: cv2.resize(x, (512, 512), interpolation=cv2.INTER_CUBIC).clip(0, 1),
    "noise sd 0.03": lambda x: np.clip(x + np.random.default_rng(0).normal(0, 0.03, x.shape), 0, 1).astype(np.float32),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the data set folder (Training/ is read)")
    ap.add_argument("--models", nargs="+", required=True, help="AlexNet artifacts to probe")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {Path(m).stem: load_model(m).eval() for m in args.models}
    spec = next(iter(models.values())).spec
    recipe = TrainRecipe(data=args.data)
    folder = BrainMRIFolder(args.data, "Training", spec)
    _, val_idx = stratified_split(folder.targets, recipe.val_fraction, recipe.seed)
    windows = [model_window(folder.load_slice(int(i)), spec) for i in val_idx]
    labels = np.array([folder.targets[int(i)] for i in val_idx])
    rows = []
    for name, shift in SHIFTS.items():
        x = torch.stack([to_model_input(shift(w), spec, normalize=False) for w in windows])
        row = {"shift": name, "n": len(labels), "accuracy": {}}
        for m_name, model in models.items():
            with torch.no_grad():
                pred = torch.cat([model(x[i:i + 64]) for i in range(0, len(x), 64)]).argmax(1).numpy()
            row["accuracy"][m_name] = float(np.mean(pred == labels))
        print(f"{name:<28} " + "  ".join(f"{k} {v:.3f}" for k, v in row["accuracy"].items()), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"split": "validation (train command's)", "rows": rows}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
