"""The AlexNet of the report and its images: a cached checkpoint or a fresh training run,
and the held-out test, validation, calibration and fine-tuning sets.

Everything goes through the ``train`` command's own code (its
:class:`~hscc_mri.recipes.TrainRecipe` for the defaults, :func:`~hscc_mri.training.run_training`
and its split functions for the seeds), so the report always measures the model that
``hscc-mri train`` makes.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from ..recipes import TrainRecipe

__all__ = ["DataBundle", "checkpoint_problem", "load_data", "obtain_alexnet", "train_recipe"]


@dataclass
class DataBundle:
    """The images of the AlexNet experiments.

    Attributes:
        source: ``"phantoms"`` or the data-set folder.
        class_names: label index -> class name.
        test: held-out test set (``(N, C, H, W)`` float16 images, labels).
        val: validation set (the train command's), used to choose settings (Pareto sweep).
        calibration: unlabelled training images, batches ``(n, C, H, W)`` (HSCC).
        finetune: labelled training images, ``(x, y)`` batches (distillation).
        info: sizes and seeds, for the report.
    """

    source: str
    class_names: list[str]
    test: TensorDataset
    val: TensorDataset
    calibration: list[torch.Tensor]
    finetune: list[tuple[torch.Tensor, torch.Tensor]]
    info: dict[str, Any] = field(default_factory=dict)


def train_recipe(data: str, checkpoint: str | Path, seed: int, threads: int,
                 overrides: tuple[tuple[str, Any], ...] = ()) -> TrainRecipe:
    """The ``train`` run that makes (or made) the report's AlexNet: the train command's
    defaults with ``overrides`` applied."""
    return TrainRecipe(model="alexnet", data=data, out=str(checkpoint), seed=seed, threads=threads,
                       **dict(overrides))


def _batches(x: torch.Tensor, y: torch.Tensor | None, size: int = 64) -> list[Any]:
    out = []
    for i in range(0, len(x), size):
        xb = x[i:i + size].float()
        out.append(xb if y is None else (xb, y[i:i + size]))
    return out


def load_data(spec, args: TrainRecipe, n_calib: int, n_finetune: int) -> DataBundle:
    """Test, validation, calibration and fine-tuning images for ``args`` (the train command).

    Phantoms: the train command's splits (:func:`hscc_mri.splits.phantom_splits`, distinct
    seeds); calibration and fine-tuning images are the first images of its training split.
    A folder: its ``Testing`` split, the train command's stratified validation split, and
    un-augmented images of its training split (a seeded subset).
    """
    from ..splits import folder_splits, materialize, phantom_split_seeds, phantom_splits

    n_train = max(n_calib, n_finetune)
    if args.data == "phantoms":
        train, val, test = phantom_splits(spec, n_train, args.n_val, args.n_test, args.seed)
        x, y = train.tensors
        seeds = phantom_split_seeds(args.seed)
    else:
        from preprocessing.datasets import BrainMRIFolder

        train_aug, val_subset, test_folder = folder_splits(spec, args.data, args.val_fraction, args.seed)
        plain = BrainMRIFolder(args.data, "Training", spec, augment=False)
        rng = np.random.default_rng(args.seed)
        indices = [int(i) for i in rng.permutation(np.asarray(train_aug.indices))[:n_train]]
        train = materialize(Subset(plain, indices), "reading training scans")
        val = materialize(val_subset, "reading validation scans")
        test = materialize(test_folder, "reading test scans")
        x, y = train.tensors
        seeds = {"split": args.seed, "subset": args.seed}
    calib = _batches(x[:n_calib], None)
    finetune = _batches(x[:n_finetune], y[:n_finetune])
    info = {"source": args.data, "test": len(test), "val": len(val), "calibration": len(x[:n_calib]),
            "finetune": len(x[:n_finetune]), "seeds": seeds,
            "test_class_counts": np.bincount(test.tensors[1].numpy(), minlength=spec.num_classes).tolist()}
    return DataBundle(args.data, list(spec.class_names), test, val, calib, finetune, info)


def checkpoint_problem(path: str | Path, args: TrainRecipe) -> str | None:
    """Why the checkpoint at ``path`` is not the one ``args`` would train (``None``: it is).

    Compares the training report the train command writes beside the checkpoint with
    ``args``: model, data, epochs, batch size, learning rate, seed and, for phantoms,
    the split sizes.
    """
    from hscc_core import report_path

    path = Path(path)
    if not path.is_file():
        return f"no checkpoint at {path}"
    meta_path = report_path(path)
    if not meta_path.is_file():
        return f"no training report {meta_path.name} beside the checkpoint"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable training report {meta_path.name}: {e}"
    if meta.get("model") != args.model:
        return f"checkpoint is a {meta.get('model')!r}, not {args.model!r}"
    data = meta.get("data")
    if args.data == "phantoms" or data == "phantoms":
        if data != args.data:
            return f"checkpoint was trained on {data!r}, not {args.data!r}"
    elif Path(data).resolve() != Path(args.data).resolve():
        return f"checkpoint was trained on {data!r}, not {args.data!r}"
    config = meta.get("config", {})
    for key in ("epochs", "batch_size", "lr", "seed"):
        if config.get(key) != getattr(args, key):
            return f"checkpoint has {key}={config.get(key)!r}, the train defaults now give {getattr(args, key)!r}"
    if args.data == "phantoms":
        sizes = meta.get("sizes", {})
        for key, arg in (("train", "n_train"), ("val", "n_val"), ("test", "n_test")):
            if sizes.get(key) != getattr(args, arg):
                return f"checkpoint has {sizes.get(key)} {key} phantoms, the train defaults now give {getattr(args, arg)}"
    if data != "phantoms" and meta.get("augment") != args.augment:
        return f"checkpoint was trained with augment={meta.get('augment')!r}, the train defaults now give {args.augment!r}"
    if "test" not in meta or "accuracy" not in meta["test"]:
        return "the training report has no test accuracy"
    return None


def _accuracy(model: nn.Module, test: TensorDataset) -> float:
    from ..training import predict_proba

    probs, labels = predict_proba(model, test, 64)
    return float(np.mean(probs.argmax(1) == labels))


def obtain_alexnet(args: TrainRecipe, test: TensorDataset, log: Callable[[str], None] = print,
                   trust: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """The AlexNet trained by ``args``: the cached checkpoint if it matches, else a new run.

    With ``trust`` (a checkpoint the user named), an existing file at ``args.out`` is used
    as it is and never overwritten. Otherwise a checkpoint matches when :func:`checkpoint_problem` finds nothing *and* it reproduces
    its recorded test accuracy on the regenerated test set (a changed phantom generator
    or data set shows up there). Otherwise the train command is run with ``args`` (same
    code, same defaults) and overwrites the checkpoint.

    Returns:
        The model (eval mode) and a record: checkpoint path, whether it was trained now,
        why, the training report and seconds.
    """
    from hscc_core import report_path

    from ..resolve import load_model
    from ..training import run_training

    path = Path(args.out)
    if trust and path.is_file():
        meta = report_path(path)
        log(f"using the given checkpoint {path} as it is")
        return load_model(path).eval(), {
            "checkpoint": str(path), "trained_now": False, "reason": "given with --checkpoint (used as is)",
            "training": json.loads(meta.read_text()) if meta.is_file() else None, "seconds": 0.0}
    problem = checkpoint_problem(path, args)
    if problem is None:
        model = load_model(path).eval()
        recorded = json.loads(report_path(path).read_text())["test"]
        if recorded.get("n") == len(test):
            acc = _accuracy(model, test)
            tolerance = max(2.0 / len(test), 0.002)
            if abs(acc - recorded["accuracy"]) > tolerance:
                problem = (f"checkpoint gives {acc:.4f} test accuracy on today's test set, its report says "
                           f"{recorded['accuracy']:.4f}: the data changed since it was trained")
        if problem is None:
            log(f"using cached checkpoint {path}")
            return model, {"checkpoint": str(path), "trained_now": False, "reason": "cached checkpoint matches",
                           "training": json.loads(report_path(path).read_text()), "seconds": 0.0}
    log(f"training the AlexNet ({problem}): hscc-mri train --data {args.data} --out {path}")
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    run_training(args, log=log)
    seconds = time.perf_counter() - t0
    model = load_model(path).eval()
    return model, {"checkpoint": str(path), "trained_now": True, "reason": problem,
                   "training": json.loads(report_path(path).read_text()), "seconds": seconds}
