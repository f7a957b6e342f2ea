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
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from hscc_core.progress import progress_bar

from . import distributed
from .batch_augment import BATCH_AUGMENTATIONS, augment_batch
from .errors import SettingsError
from .recipes import DEFAULT_EPOCHS, TRAIN_PRECISIONS, TrainRecipe
from .resolve import save_model, save_model_with_report
from .splits import folder_splits, phantom_splits


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_classifier` (defaults: :class:`~hscc_mri.recipes.TrainRecipe`'s)."""

    epochs: int = DEFAULT_EPOCHS["phantoms"]
    batch_size: int = TrainRecipe.batch_size
    lr: float = TrainRecipe.lr
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    seed: int = TrainRecipe.seed
    batch_augment: str = "shift"
    num_workers: int = 0
    device: str = TrainRecipe.device
    precision: str = TrainRecipe.precision

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise SettingsError(f"epochs, batch_size and lr must be positive: {self}")
        if self.precision not in TRAIN_PRECISIONS:
            raise SettingsError(f"precision must be one of {TRAIN_PRECISIONS}, got {self.precision!r}")
        if self.batch_augment not in BATCH_AUGMENTATIONS:
            raise SettingsError(f"batch_augment must be one of {BATCH_AUGMENTATIONS}, got {self.batch_augment!r}")


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
    for x, y in progress_bar(batches, desc=desc or "predicting", unit="batch", leave=False, disable=desc is None):
        probs.append(torch.softmax(model(x.to(device, torch.float32)).float(), dim=1).cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(probs).numpy(), torch.cat(labels).numpy().astype(np.int64)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, loss_fn: nn.Module, x: torch.Tensor,
               y: torch.Tensor, amp: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on the batch ``(x, y)``: forward (under bfloat16 autocast when
    ``amp``), loss, backward, optimizer step. ``model`` may be wrapped in
    :class:`~torch.nn.parallel.DistributedDataParallel`, which averages the gradients of
    all processes during ``backward``: with equal local batches, the step equals a
    single-process step on their union.

    Returns:
        The (detached) loss and logits.

    Raises:
        FloatingPointError: the loss is not finite.
    """
    with torch.autocast(x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
        logits = model(x)
    loss = loss_fn(logits.float(), y)
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"training diverged (loss {loss.item()}); lower --lr")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), logits.detach()


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW over ``model``'s parameters as :func:`train_classifier` uses it."""
    # fused: one kernel per parameter group instead of a Python loop of small ops; on a
    # 2-core CPU that is a third of AlexNet's step time (its FC layers hold 58M weights)
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                             fused=device.type in ("cpu", "cuda"))


def _train_loader(train_set: Dataset, config: TrainConfig, gen: torch.Generator) -> tuple[DataLoader, Any]:
    """The training loader: shuffled by ``gen``; under DDP each process reads its share of
    every epoch (a :class:`~torch.utils.data.DistributedSampler`, ``batch_size / world``
    per process, so ``batch_size`` stays the global batch)."""
    world = distributed.world_size()
    if world == 1:
        return _loader(train_set, config.batch_size, True, config.num_workers, gen), None
    if config.batch_size % world:
        raise SettingsError(f"batch size {config.batch_size} is not divisible by the {world} processes")
    sampler = DistributedSampler(train_set, num_replicas=world, rank=distributed.rank(), shuffle=True,
                                 seed=config.seed)
    return DataLoader(train_set, batch_size=config.batch_size // world, sampler=sampler,
                      num_workers=config.num_workers), sampler


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

    Under ``torchrun`` (an initialised process group of several processes) the model is
    wrapped in DistributedDataParallel and every process trains on its share of each
    epoch; rank 0 validates, logs and checkpoints, and sends its validation accuracy to the
    others so that all keep the same best weights. BatchNorm statistics are per process on
    CPUs (PyTorch's SyncBatchNorm is GPU-only) and synchronised on GPUs.
    """
    gen = seed_everything(config.seed)
    device = torch.device(config.device)
    spec = getattr(model, "spec", None)  # without one, inputs are taken to be in [0, 1]
    mean, std = (spec.mean, spec.std) if spec is not None else ((0.0,), (1.0,))
    main = distributed.rank() == 0
    log = log if main else (lambda _: None)
    # channels-last convolutions: 13% faster AlexNet training steps on 2 AVX2 cores
    memory_format = torch.channels_last if device.type == "cpu" else torch.preserve_format
    model.to(device, memory_format=memory_format)
    train_loader, sampler = _train_loader(train_set, config, gen)
    net: nn.Module = model
    if sampler is not None:
        if device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        # each process augments differently; the shuffling is the sampler's (seeded, shared)
        gen = torch.Generator().manual_seed(config.seed * 1000 + distributed.rank())
        log(f"distributed training: {distributed.world_size()} processes, "
            f"{config.batch_size // distributed.world_size()} images each per step")
    steps = config.epochs * len(train_loader)
    opt = make_optimizer(model, config, device)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    amp = autocast_dtype(config.precision, device)
    log(f"training arithmetic: {'bfloat16 autocast' if amp else 'float32'}")
    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        total, correct, loss_sum = 0, 0, 0.0
        bar = progress_bar(train_loader, desc=f"epoch {epoch}/{config.epochs}", unit="batch", leave=False,
                           disable=not main)
        for x, y in bar:
            x = augment_batch(config.batch_augment, x.to(torch.float32), gen, mean, std)
            x, y = x.to(device, memory_format=memory_format), y.to(device)
            try:
                loss, logits = train_step(net, opt, loss_fn, x, y, amp)
            except FloatingPointError as e:
                raise FloatingPointError(f"epoch {epoch}: {e}") from e
            sched.step()
            total += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += loss.item() * len(y)
            bar.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        val_acc = float("nan")
        if main:
            probs, labels = predict_proba(model, val_set, config.batch_size, config.device)
            val_acc = float(np.mean(probs.argmax(1) == labels))
        val_acc = distributed.broadcast_float(val_acc)
        row = {"epoch": epoch, "train_loss": loss_sum / total, "train_accuracy": correct / total,
               "val_accuracy": val_acc, "seconds": time.perf_counter() - start}
        result.history.append(row)
        improved = val_acc > result.best_val_accuracy
        if improved:
            result.best_epoch, result.best_val_accuracy = epoch, val_acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if checkpoint is not None and main:
                model.eval()
                save_model(export(model) if export else model, checkpoint, extra={"training": result.to_dict()})
        log(f"epoch {epoch}/{config.epochs}: loss {row['train_loss']:.4f}, train acc {row['train_accuracy']:.4f}, "
            f"val acc {val_acc:.4f}{' (best, saved)' if improved and checkpoint else ''} "
            f"[{row['seconds']:.0f} s]")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


def recipe_splits(recipe: TrainRecipe, spec) -> tuple[Dataset, Dataset, Dataset]:
    """The (train, validation, test) data sets of ``recipe`` for a model of ``spec``.

    Raises:
        NotADirectoryError: ``recipe.data`` is neither ``"phantoms"`` nor a folder.
    """
    if recipe.data == "phantoms":
        return phantom_splits(spec, recipe.n_train, recipe.n_val, recipe.n_test, recipe.seed)
    return folder_splits(spec, recipe.data, recipe.val_fraction, recipe.seed, in_memory=recipe.in_memory,
                         num_workers=recipe.workers)


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
    with distributed.process_group_from_env(recipe.device, recipe.threads) as device:
        return _run_training(recipe, device, log)


def _run_training(recipe: TrainRecipe, device: torch.device, log: Callable[[str], None]) -> dict[str, Any]:
    from hscc_core import classification_report, report_path
    from models import build_trainable

    main = distributed.rank() == 0
    log = log if main else (lambda _: None)
    try:
        model, export = build_trainable(recipe.model)
    except ValueError as e:
        raise LookupError(str(e)) from e
    spec = model.spec
    config = TrainConfig(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, seed=recipe.seed,
                         num_workers=0 if recipe.in_memory else recipe.workers, device=str(device),
                         precision=recipe.precision, batch_augment=recipe.batch_augmentation)
    t0 = time.perf_counter()
    train_set, val_set, test_set = recipe_splits(recipe, spec)
    data_seconds = time.perf_counter() - t0
    log(f"data: {len(train_set)} train / {len(val_set)} val / {len(test_set)} test "
        f"({recipe.data}; prepared in {data_seconds:.0f} s)")
    result = train_classifier(model, train_set, val_set, config, checkpoint=recipe.out, log=log, export=export)
    report: dict[str, Any] = {"model": recipe.model, "data": recipe.data, "config": asdict(config),
                              "training": result.to_dict()}
    if not main:  # rank 0 tests and saves; the others are done
        return report
    model = export(model.eval())  # the deployable layout is what gets tested and saved
    probs, labels = predict_proba(model, test_set, recipe.batch_size, config.device, desc="testing")
    test = classification_report(labels, probs.argmax(1), spec.class_names)
    total = time.perf_counter() - t0
    report.update({
        "augment": recipe.augment, "batch_augmentation": recipe.batch_augmentation,
        "sizes": {"train": len(train_set), "val": len(val_set), "test": len(test_set)},
        "test": test.to_dict(),
        "seconds": {"data": data_seconds, "training": result.seconds, "total": total},
        "threads": torch.get_num_threads(), "processes": distributed.world_size(),
    })
    save_model_with_report(model.cpu(), recipe.out, report,
                           extra={"training": result.to_dict(), "test": test.to_dict()})
    log(f"test: {test.summary()}")
    log(f"saved {recipe.out} and {report_path(recipe.out)} in {total / 60:.1f} min")
    return report
