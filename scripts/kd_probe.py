"""Distillation recipes for one compressed AlexNet: what each recovers on the test set.

The report fine-tunes every method with one recipe (3 epochs, lr 1e-4, 1,600 images,
early stopping). HSCC starts close to the original, and that recipe kept its
pre-distillation weights; this probe asks whether a gentler or a longer recipe helps it.
It compresses the report's AlexNet once (report settings: same checkpoint, calibration
and test images), then for each recipe distils a fresh copy and prints validation loss
before/after, the epoch early stopping kept, and test accuracy / agreement with the
original, the un-fine-tuned model and the original included for reference.

    python scripts/kd_probe.py [--method hscc] [--budget 6] [--n-finetune 1600 3200]
                               [--lr 1e-4 3e-5] [--epochs 3] [--json runs/kd_probe.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hscc_core import CompressionConfig, FinetuneConfig, compress, distill  # noqa: E402
from hscc_mri.report.data import load_data, obtain_alexnet, train_recipe  # noqa: E402
from hscc_mri.training import predict_proba  # noqa: E402
from models import build_model  # noqa: E402


def _scores(model: torch.nn.Module, test, reference: np.ndarray) -> dict[str, float]:
    """Test accuracy and top-1 agreement with the original's labels ``reference``."""
    probs, _ = predict_proba(model, test, 64)
    pred = probs.argmax(1)
    return {"accuracy": float((pred == test.tensors[1].numpy()).mean()), "agreement": float((pred == reference).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/alexnet-phantoms.safetensors")
    parser.add_argument("--method", default="hscc", choices=("hscc", "svd", "tucker"))
    parser.add_argument("--budget", type=float, default=6.0)
    parser.add_argument("--n-finetune", type=int, nargs="+", default=[1600], help="labelled images (each a recipe)")
    parser.add_argument("--lr", type=float, nargs="+", default=[1e-4, 3e-5], help="peak learning rates")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_args = train_recipe("phantoms", args.checkpoint, args.seed, args.threads)
    spec = build_model("alexnet", pretrained=False).spec
    bundle = load_data(spec, train_args, 256, max(args.n_finetune))
    teacher, _ = obtain_alexnet(train_args, bundle.test, trust=True)
    config = CompressionConfig(method=args.method, budget=args.budget, seed=args.seed)
    student, _ = compress(teacher, bundle.calibration if args.method == "hscc" else None, config)

    ref_probs, _ = predict_proba(teacher, bundle.test, 64)
    reference = ref_probs.argmax(1)
    rows = [{"recipe": "original", **_scores(teacher, bundle.test, reference)},
            {"recipe": "no fine-tuning", **_scores(student, bundle.test, reference)}]
    # the first n of the fine-tuning images, as the report would load them with n_finetune=n
    x_all = torch.cat([xb for xb, _ in bundle.finetune])
    y_all = torch.cat([yb for _, yb in bundle.finetune])
    for n in args.n_finetune:
        for lr in args.lr:
            model = copy.deepcopy(student)
            record = distill(model, teacher, [(x_all[:n], y_all[:n])],
                             FinetuneConfig(epochs=args.epochs, lr=lr, seed=args.seed))
            rows.append({"recipe": f"{n} images, lr {lr:g}, {args.epochs} epochs",
                         **_scores(model, bundle.test, reference), "val_loss_before": record["val_loss_before"],
                         "val_losses": [h["val_loss"] for h in record["history"]], "best_epoch": record["best_epoch"]})

    print(f"\n{args.method} {args.budget:g}x, {len(bundle.test)} test images")
    for r in rows:
        extra = ""
        if "val_losses" in r:
            losses = ", ".join(f"{v:.3f}" for v in r["val_losses"])
            extra = f"  val loss {r['val_loss_before']:.3f} -> [{losses}], kept epoch {r['best_epoch']}"
        print(f"{r['recipe']:<34} accuracy {100 * r['accuracy']:5.1f}%  agreement {100 * r['agreement']:5.1f}%{extra}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"method": args.method, "budget": args.budget, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
