"""Supervised training and batched inference for the classifiers.

Used by the ``train`` command (:func:`run_training`) and by the report. The
best-on-validation model is checkpointed atomically after every improving epoch, so an
interrupted run always leaves a usable model behind.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from .recipes import PRECISIONS, TrainRecipe
from .resolve import save_model, save_model_with_report


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_classifier` (defaults: :class:`~hscc_mri.recipes.TrainRecipe`'s)."""

    epochs: int = TrainRecipe.epochs
    batch_size: int = TrainRecipe.batch_size
    lr: float = TrainRecipe.lr
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    seed: int = TrainRecipe.seed
    batch_augment: bool = True
    num_workers: int = 0
    device: str = TrainRecipe.device
    precision: str = TrainRecipe.precision

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"epochs, batch_size and lr must be positive: {self}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (``None``: plain float32)."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cpu":
        try:
            native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # private probe: absent in some builds
            native = False
        return torch.bfloat16 if native else None
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


@dataclass
class TrainResult:
    """What a training run did: per-epoch history and the best validation epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = float("-inf")
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; return a torch generator for data shuffling."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


def materialize(dataset: Dataset, desc: str = "preparing data", dtype: torch.dtype = torch.float16) -> TensorDataset:
    """Compute every item of ``dataset`` once and keep it in memory (``dtype`` to halve RAM).

    Phantoms are expensive to draw and already randomised in pose, contrast and noise,
    so generating a fixed set once beats regenerating it every epoch.
    """
    xs, ys = [], []
    for i in tqdm(range(len(dataset)), desc=desc, unit="img", leave=False):
        x, y = dataset[i]
        xs.append(x.to(dtype))
        ys.append(int(y))
    return TensorDataset(torch.stack(xs), torch.tensor(ys, dtype=torch.int64))


def batch_augment(x: torch.Tensor, generator: torch.Generator, max_shift: float = 0.08) -> torch.Tensor:
    """Cheap label-preserving augmentation of a whole batch ``(N, C, H, W)``: random
    left/right flips and translations by up to ``max_shift`` of the size (zero fill).
    Fixed phantom sets overfit without it; done on tensors it costs almost nothing."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy = torch.randint(-int(max_shift * h), int(max_shift * h) + 1, (n,), generator=generator)
    dx = torch.randint(-int(max_shift * w), int(max_shift * w) + 1, (n,), generator=generator)
    out = torch.zeros_like(x)
    for i in range(n):
        ys, yd = (slice(0, h - dy[i]), slice(dy[i], h)) if dy[i] >= 0 else (slice(-dy[i], h), slice(0, h + dy[i]))
        xs, xd = (slice(0, w - dx[i]), slice(dx[i], w)) if dx[i] >= 0 else (slice(-dx[i], w), slice(0, w + dx[i]))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int,
            generator: torch.Generator | None = None) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=generator, drop_last=False)


@torch.no_grad()
def predict_proba(model: nn.Module, data: Dataset | Iterable, batch_size: int = 64,
                  device: str = "cpu", desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs and labels of ``model`` over a labelled data set or batch iterable.

    Returns:
        ``probs (N, C)`` float32 and ``labels (N,)`` int64.
    """
    model.eval().to(device)
    batches = _loader(data, batch_size, False, 0) if isinstance(data, Dataset) else data
    probs, labels = [], []
    for x, y in tqdm(batches, desc=desc or "predicting", unit="batch", leave=False, disable=desc is None):
        probs.append(torch.softmax(model(x.to(device, torch.float32)).float(), dim=1).cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(probs).numpy(), torch.cat(labels).numpy().astype(np.int64)


def train_classifier(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    config: TrainConfig,
    checkpoint: str | Path | None = None,
    log: Callable[[str], None] = print,
    export: Callable[[nn.Module], nn.Module] | None = None,
) -> TrainResult:
    """Train ``model`` with AdamW + one-cycle LR and cross-entropy.

    After each epoch the validation accuracy is measured; when it improves, the model is
    saved to ``checkpoint`` (atomically; as ``export(model)`` when given, e.g. to fold
    BatchNorms) and ``model`` ends holding the best weights.
    """
    gen = seed_everything(config.seed)
    device = torch.device(config.device)
    model.to(device)
    train_loader = _loader(train_set, config.batch_size, True, config.num_workers, gen)
    steps = config.epochs * len(train_loader)
    # fused: one kernel per parameter group instead of a Python loop of small ops; on a
    # 2-core CPU that is a third of AlexNet's step time (its FC layers hold 58M weights)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    amp = autocast_dtype(config.precision, device)
    log(f"training arithmetic: {'bfloat16 autocast' if amp else 'float32'}")
    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False)
        for x, y in bar:
            x, y = x.to(torch.float32), y.to(device)
            if config.batch_augment:
                x = batch_augment(x, gen)
            with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                logits = model(x.to(device))
            loss = loss_fn(logits.float(), y)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss {loss.item()}); lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += loss.item() * len(y)
            bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        probs, labels = predict_proba(model, val_set, config.batch_size, config.device)
        val_acc = float(np.mean(probs.argmax(1) == labels))
        row = {"epoch": epoch, "train_loss": loss_sum / total, "train_accuracy": correct / total,
               "val_accuracy": val_acc, "seconds": time.perf_counter() - start}
        result.history.append(row)
        improved = val_acc > result.best_val_accuracy
        if improved:
            result.best_epoch, result.best_val_accuracy = epoch, val_acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if checkpoint is not None:
                model.eval()
                save_model(export(model) if export else model, checkpoint, extra={"training": result.to_dict()})
        log(f"epoch {epoch}/{config.epochs}: loss {row['train_loss']:.4f}, train acc {row['train_accuracy']:.4f}, "
            f"val acc {val_acc:.4f}{' (best, saved)' if improved and checkpoint else ''} "
            f"[{row['seconds']:.0f} s]")
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def recipe_splits(recipe: TrainRecipe, spec) -> tuple[Dataset, Dataset, Dataset]:
    """The (train, validation, test) data sets of ``recipe`` for a model of ``spec``.

    Raises:
        NotADirectoryError: ``recipe.data`` is neither ``"phantoms"`` nor a folder.
    """
    from .splits import folder_splits, phantom_splits

    if recipe.data == "phantoms":
        return phantom_splits(spec, recipe.n_train, recipe.n_val, recipe.n_test, recipe.seed)
    return folder_splits(spec, recipe.data, recipe.val_fraction, recipe.seed)


def run_training(recipe: TrainRecipe, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``recipe.model`` as ``recipe`` says, test it once, save checkpoint and report.

    The best-on-validation model is written atomically to ``recipe.out`` after each
    improving epoch; at the end the deployable layout (e.g. BatchNorms folded) is tested on
    the test split and saved with its report JSON beside it.

    Returns:
        The report (model, data, config, sizes, training history, test metrics, seconds).

    Raises:
        LookupError: ``recipe.model`` is not a registry model.
        NotADirectoryError: ``recipe.data`` is neither ``"phantoms"`` nor a folder.
    """
    from hscc_core import classification_report, report_path
    from models import build_trainable

    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    try:
        model, export = build_trainable(recipe.model)
    except ValueError as e:
        raise LookupError(str(e)) from e
    spec = model.spec
    config = TrainConfig(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, seed=recipe.seed,
                         num_workers=recipe.workers, device=recipe.device, precision=recipe.precision)
    t0 = time.perf_counter()
    train_set, val_set, test_set = recipe_splits(recipe, spec)
    data_seconds = time.perf_counter() - t0
    log(f"data: {len(train_set)} train / {len(val_set)} val / {len(test_set)} test "
        f"({recipe.data}; prepared in {data_seconds:.0f} s)")
    result = train_classifier(model, train_set, val_set, config, checkpoint=recipe.out, log=log, export=export)
    model = export(model.eval())  # the deployable layout is what gets tested and saved
    probs, labels = predict_proba(model, test_set, recipe.batch_size, recipe.device, desc="testing")
    test = classification_report(labels, probs.argmax(1), spec.class_names)
    total = time.perf_counter() - t0
    report = {
        "model": recipe.model, "data": recipe.data, "config": asdict(config),
        "sizes": {"train": len(train_set), "val": len(val_set), "test": len(test_set)},
        "training": result.to_dict(), "test": test.to_dict(),
        "seconds": {"data": data_seconds, "training": result.seconds, "total": total},
        "threads": torch.get_num_threads(),
    }
    save_model_with_report(model, recipe.out, report, extra={"training": result.to_dict(), "test": test.to_dict()})
    log(f"test: {test.summary()}")
    log(f"saved {recipe.out} and {report_path(recipe.out)} in {total / 60:.1f} min")
    return report
