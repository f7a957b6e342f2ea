"""Agreement of HSCC-compressed VGG16 with the original against calibration size, views,
phantoms, budget and distillation — measured on a validation split of the real training
scans (never on ``Testing/``), to choose the default calibration set and recovery.

Calibration sets are the first ``k`` scans of each class of the shipped real subset
(``data/calibration/brain-mri/manifest.json``, in draw order), optionally in ``views``
augmented views each plus ``phantoms`` synthetic phantoms. The validation scans are the
per-class draw of ``scripts/choose_preprocessing.py`` (disjoint from the calibration
subset, which comes from the training part of the split). Distillation (``kd``) uses
unlabelled training-part scans that are neither in the validation split nor above the
draw limit.

Each run is ``BUDGET:SCANS:VIEWS:PHANTOMS[:KD_IMAGES:KD_EPOCHS]`` (SCANS = total, split
evenly over the four classes); results are appended to ``--out`` as JSON lines, so an
interrupted sweep resumes where it stopped.

    python scripts/calibration_curve.py --data ../shared/data/brain-mri --runs 6:128:1:0 6:256:1:0
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from choose_preprocessing import probabilities, validation_subset  # noqa: E402
from hscc_core import CompressionConfig, FinetuneConfig, compress, distill, fidelity, report_path  # noqa: E402
from hscc_mri.calibration import augmented_views, calibration_batches, load_slices  # noqa: E402
from hscc_mri.resolve import load_model, save_model_with_report  # noqa: E402
from models import build_model  # noqa: E402
from preprocessing import load_scan, scan_to_model_input  # noqa: E402
from preprocessing.phantoms import phantom_sample  # noqa: E402

CALIB = ROOT / "data" / "calibration" / "brain-mri"


def calibration_files(per_class: int) -> list[Path]:
    files = json.loads((CALIB / "manifest.json").read_text())["files"]
    by_class: dict[str, list[Path]] = {}
    for f in files:
        by_class.setdefault(f["class"], []).append(CALIB / f["file"])
    if any(len(v) < per_class for v in by_class.values()):
        raise SystemExit(f"the shipped subset has fewer than {per_class} scans per class")
    return [p for v in by_class.values() for p in v[:per_class]]


def kd_files(data: str, n: int, seed: int = 5) -> list[Path]:
    from preprocessing.datasets import BrainMRIFolder, stratified_split
    from models import ModelSpec

    folder = BrainMRIFolder(data, "Training", ModelSpec(name="x"))
    train_idx, _ = stratified_split(folder.targets, 0.1, 0)
    rng = np.random.default_rng(seed)
    return [folder.samples[i][0] for i in sorted(rng.choice(train_idx, n, replace=False))]


def kd_lr_tag(run: str, args) -> bool:
    """Distillation runs at another than the default learning rate carry it in their key."""
    return len(run.split(":")) > 4 and args.kd_lr != 1e-4


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--per-class", type=int, default=100, help="validation scans per class")
    ap.add_argument("--out", default="runs/calibration_curve.jsonl")
    ap.add_argument("--regions", default="1x1")
    ap.add_argument("--kd-lr", type=float, default=1e-4, help="peak learning rate of the distillation runs")
    ap.add_argument("--tag", default="", help="names a code or config variant: part of each run's key")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="CompressionConfig overrides, e.g. negligible_share=0 ratio_bounds=0.5,2.5")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model("vgg16-brain-mri")
    spec = model.spec
    val = validation_subset(args.data, spec, args.per_class, 0)
    labels = np.array([y for _, y in val])
    xs = [scan_to_model_input(load_scan(p), spec) for p, _ in val]
    cache = ROOT / "runs" / f"val_ref_{spec.resize}_{spec.scaling}_{len(xs)}.npy"
    if cache.is_file():
        p_ref = np.load(cache)
    else:
        p_ref = probabilities(model.to(memory_format=torch.channels_last), xs)
        model = model.to(memory_format=torch.contiguous_format)
        cache.parent.mkdir(exist_ok=True)
        np.save(cache, p_ref)
    confident = p_ref.max(1) >= 0.9
    print(f"reference: accuracy {np.mean(p_ref.argmax(1) == labels):.3f} on {len(xs)} validation scans; "
          f"{confident.mean():.0%} with p >= 0.9", flush=True)
    done = set()
    out = Path(args.out)
    if out.is_file():
        done = {json.loads(l)["run"] for l in out.read_text().splitlines() if l.strip()}
    gh, gw = (int(v) for v in args.regions.split("x"))
    overrides = {}
    for item in args.set:
        field, value = item.split("=", 1)
        parsed = json.loads(value) if not ("," in value and not value.startswith("[")) else [float(v) for v in value.split(",")]
        overrides[field] = tuple(parsed) if isinstance(parsed, list) else parsed
    for run in args.runs:
        key = run + ("" if not kd_lr_tag(run, args) else f"/lr{args.kd_lr:g}") + ("" if args.regions == "1x1" else f"@{args.regions}") + (f"#{args.tag}" if args.tag else "")
        if key in done:
            continue
        parts = [int(v) for v in run.split(":")]
        budget, n_scans, views, phantoms = parts[:4]
        kd_images, kd_epochs = (parts[4], parts[5]) if len(parts) > 4 else (0, 0)
        t0 = time.perf_counter()
        n_images = n_scans * max(views, 1) + phantoms
        saved = ROOT / "runs" / "curve_models" / f"{budget}-{n_scans}-{views}-{phantoms}-{args.regions}{args.tag}.safetensors"
        if saved.is_file():  # the same compression without distillation was measured before
            compressed = load_model(saved)
            flops_ratio = json.loads(report_path(saved).read_text())["flops_ratio"]
        else:
            slices = load_slices(calibration_files(n_scans // 4), spec)
            images = augmented_views(slices, views, 0) if views > 1 else list(slices)
            images += [phantom_sample(i, seed=10_000)[0] for i in range(phantoms)]
            order = np.random.default_rng(0).permutation(len(images))
            batches = calibration_batches([images[i] for i in order], spec)
            config = CompressionConfig(method="hscc", budget=float(budget), regions=(gh, gw), **overrides)
            compressed, report = compress(model, batches, config, progress=False, name=spec.name)
            flops_ratio = report.flops_ratio
            saved.parent.mkdir(parents=True, exist_ok=True)
            save_model_with_report(compressed, saved, report.to_dict())
        t_compress = time.perf_counter() - t0
        kd = None
        if kd_images:
            kd_slices = load_slices(kd_files(args.data, kd_images), spec)
            kd = distill(compressed, model, calibration_batches(kd_slices, spec, 32),
                         FinetuneConfig(epochs=kd_epochs, lr=args.kd_lr, label_weight=0.0), progress=False)
        p = probabilities(compressed.to(memory_format=torch.channels_last), xs)
        fid = fidelity(p_ref, p)
        row = {"run": key, "tag": args.tag, "overrides": overrides, "budget": budget, "scans": n_scans, "views": views, "phantoms": phantoms,
               "kd_images": kd_images, "kd_epochs": kd_epochs, "kd_lr": args.kd_lr if kd_images else None, "regions": args.regions,
               "calibration_images": n_images, "flops_ratio": flops_ratio,
               "agreement": fid["agreement"], "mean_kl": fid["mean_kl"],
               "agreement_confident": float(np.mean(p.argmax(1)[confident] == p_ref.argmax(1)[confident])),
               "accuracy": float(np.mean(p.argmax(1) == labels)),
               "accuracy_reference": float(np.mean(p_ref.argmax(1) == labels)),
               "seconds_compress": t_compress, "seconds_total": time.perf_counter() - t0,
               "kd": None if kd is None else {k: kd[k] for k in ("epochs_run", "best_epoch", "val_loss_before",
                                                                 "val_loss_after", "seconds")},
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{key:<22} agree {row['agreement']:.3f} (p>=0.9: {row['agreement_confident']:.3f}) "
              f"acc {row['accuracy']:.3f} (ref {row['accuracy_reference']:.3f}) KL {row['mean_kl']:.3f} "
              f"{row['seconds_total']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
