"""How much of the compressed VGG16's fidelity survives the Training -> Testing copy shift?

The data set's two copies differ (its README): ``Training/`` was resized to 224 px and its
intensities dimmed (99th percentile at a median 0.83x of the original), ``Testing/`` holds
the original files (most 512 px). Calibration and validation scans both come from
``Training/``, so validation agreement flatters the real test. This probe rebuilds the
shift on the validation split only (never on ``Testing/``): each validation scan is
brightened by ``gain`` (undoing the dimming, clipped at white) and/or resampled the way an
original reaches the model (upsampled to 512 px, then the model's own resize back), and
measures agreement with the uncompressed model for saved compressed models.

    python scripts/shift_probe.py --data ../shared/data/brain-mri \\
        --models runs/curve_models/6-256-1-0-1x1.safetensors runs/curve_models/3-256-1-0-1x1.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from choose_preprocessing import probabilities, validation_subset  # noqa: E402
from hscc_core import fidelity  # noqa: E402
from hscc_mri.calibration import load_slices  # noqa: E402
from hscc_mri.resolve import load_model  # noqa: E402
from models import build_model  # noqa: E402
from preprocessing import to_model_input  # noqa: E402

#: (name, gain, resample): the unshifted validation scans, then the copy shift rebuilt.
SHIFTS = (("none", 1.0, False), ("gain 1.2", 1.2, False), ("resample 512", 1.0, True),
          ("gain 1.2 + resample", 1.2, True))


def shifted(slices: list[np.ndarray], gain: float, resample: bool) -> list[np.ndarray]:
    out = []
    for s in slices:
        x = np.clip(s.astype(np.float32) * gain, 0.0, 1.0)
        if resample:  # an original is larger: bring the scan to 512 px first (smooth, as a scanner image is)
            x = cv2.resize(x, (512, 512), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)
            x = np.round(x * 255.0) / 255.0  # originals are 8-bit JPEGs too
        out.append(x)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="compressed artifacts of vgg16-brain-mri")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--out", default="runs/shift_probe.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    reference = build_model("vgg16-brain-mri").to(memory_format=torch.channels_last)
    spec = reference.spec
    val = validation_subset(args.data, spec, args.per_class, 0)
    labels = np.array([y for _, y in val])
    base = load_slices([p for p, _ in val], spec)
    models = {Path(m).stem: load_model(m).to(memory_format=torch.channels_last) for m in args.models}
    rows = []
    for name, gain, resample in SHIFTS:
        xs = [to_model_input(s, spec, normalize=False) for s in shifted(base, gain, resample)]
        p_ref = probabilities(reference, xs)
        confident = p_ref.max(1) >= 0.9
        row = {"shift": name, "gain": gain, "resample": resample, "n": len(xs),
               "reference_accuracy": float(np.mean(p_ref.argmax(1) == labels)), "models": {}}
        for m_name, model in models.items():
            p = probabilities(model, xs)
            fid = fidelity(p_ref, p)
            row["models"][m_name] = {
                "agreement": fid["agreement"], "mean_kl": fid["mean_kl"],
                "agreement_confident": float(np.mean(p.argmax(1)[confident] == p_ref.argmax(1)[confident])),
                "accuracy": float(np.mean(p.argmax(1) == labels))}
            print(f"{name:<22} {m_name:<28} agree {fid['agreement']:.3f} KL {fid['mean_kl']:.3f} "
                  f"acc {row['models'][m_name]['accuracy']:.3f} (ref {row['reference_accuracy']:.3f})", flush=True)
        rows.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
