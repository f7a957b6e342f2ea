"""Faithful distillation: teach a compressed model what its original does, by function matching.

A compressed model is useful when it gives its original's answer, also where the original
is unsure. Fine-tuning on the original's answers to a few fixed images (what
:func:`hscc_core.finetune.distill` does) cannot teach that when the original has memorised
those images (its outputs there are nearly one-hot). Function matching (Beyer et al.,
CVPR 2022) can: every step draws one aggressive random view of a batch
(:mod:`hscc_core.views`: geometry, acquisition changes, mixup/CutMix) and feeds the *same*
view to teacher and student, for many epochs, so the student sees the teacher's function
on inputs off the training images. On top of the temperature-scaled KL on logits, the
student matches the teacher's feature map entering the last pooling layer (feature
mimicking, as MiR, CVPR 2022, does to recover compressed models from few images).

Design:

* Only the compressed factors train (the submodules :func:`hscc_core.compress` replaced);
  the layers it left alone stay the original's.
* No labels in the loss: labels would pull the student toward the truth, not toward the
  teacher.
* The best epoch is chosen by top-1 agreement with the teacher on a *selection* set the
  caller gives (images the teacher was not trained on; ties go to the lower KL).
* Resumable: a checkpoint after every ``checkpoint_every`` steps and every epoch holds the
  student, the optimiser, the step, the best weights and the history. The learning rate is
  a function of the step and every step's randomness is seeded by ``(seed, step)``, so a
  run cut into sittings ends with the same weights as one uninterrupted run.
* Runs under ``torchrun`` (DistributedDataParallel: each process takes its share of every
  batch; rank 0 writes the checkpoint) and on a GPU (``device="cuda"``).

The teacher may be any callable returning ``(logits, features)`` (e.g. the original
compiled in a faster runtime); by default it is the original module in PyTorch.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import distributed
from .artifacts import atomic_write
from .errors import DistillationError
from .progress import progress_bar
from .views import ViewConfig, draw_views

__all__ = ["CHECKPOINT_FORMAT", "MatchingConfig", "MatchingResult", "TeacherFn", "best_weights", "checkpoint_summary",
           "feature_layer",
           "function_matching", "load_checkpoint", "matching_loss", "module_teacher", "trainable_modules"]

#: Version of the checkpoint layout (refused when it differs).
CHECKPOINT_FORMAT = 1

#: ``teacher(x) -> (logits, features entering the last pooling layer or None)``, no gradients.
TeacherFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class MatchingConfig:
    """Settings of :func:`function_matching`.

    Attributes:
        epochs: epochs in the schedule (the cosine decays over all of them).
        steps_per_epoch: optimiser steps per epoch (``None``: one pass over the pool).
        batch_size: images per step (the global batch under ``torchrun``).
        lr: peak learning rate (AdamW).
        warmup_steps: linear warm-up steps before the cosine decay.
        weight_decay: AdamW weight decay.
        temperature: ``T`` of the KL term ``T² KL(softmax(t/T) ‖ softmax(s/T))``.
        feature_weight: weight of the feature term (relative squared error of the feature
            map entering the last pooling layer); 0 switches it off.
        views: the random views (:class:`hscc_core.views.ViewConfig`).
        precision: ``"float32"`` or ``"bfloat16"`` (autocast of the training forward
            passes; weights, optimiser and the selection measurement stay float32).
        checkpoint_every: steps between checkpoints (also written after every epoch).
        seed: data order and views.
    """

    epochs: int = 20
    steps_per_epoch: int | None = None
    batch_size: int = 32
    lr: float = 2e-4
    warmup_steps: int = 30
    weight_decay: float = 0.0
    temperature: float = 2.0
    feature_weight: float = 0.5
    views: ViewConfig = field(default_factory=ViewConfig)
    precision: str = "float32"
    checkpoint_every: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise DistillationError(f"epochs, batch_size and lr must be positive, got {self.epochs}, "
                                    f"{self.batch_size}, {self.lr}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise DistillationError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")
        if self.temperature <= 0 or self.feature_weight < 0 or self.warmup_steps < 0:
            raise DistillationError("temperature must be > 0, feature_weight and warmup_steps >= 0")
        if self.precision not in ("float32", "bfloat16"):
            raise DistillationError(f"precision must be 'float32' or 'bfloat16', got {self.precision!r}")
        if self.checkpoint_every < 1:
            raise DistillationError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def schedule_key(self) -> dict[str, Any]:
        """What a checkpoint must share with the run that resumes it (everything but the
        checkpoint interval)."""
        key = self.to_dict()
        key.pop("checkpoint_every")
        return key


@dataclass
class MatchingResult:
    """What a run did: agreement before and after, the per-epoch curve, the cost."""

    config: dict[str, Any]
    trainable: list[str]
    pool_images: int
    select_images: int
    steps_per_epoch: int
    before: dict[str, float]
    best: dict[str, Any]
    history: list[dict[str, Any]]
    finished: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- pieces
def trainable_modules(student: nn.Module) -> list[str]:
    """Names of the submodules that train: those :func:`hscc_core.compress` replaced (its
    ``hscc_replacements``), else every module with parameters (an uncompressed student)."""
    records = getattr(student, "hscc_replacements", None)
    if records:
        return [str(r["path"]) for r in records]
    return [name for name, m in student.named_children() if any(True for _ in m.parameters())]


def feature_layer(model: nn.Module) -> str | None:
    """Name of the last pooling layer in ``model``'s module order (its *input* is the feature
    map matched), or ``None`` when the model has none."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, _POOLS):
            last = name
    return last


class _FeatureTap:
    """Keeps the input of one submodule from the latest forward pass."""

    def __init__(self, model: nn.Module, name: str | None) -> None:
        self.value: torch.Tensor | None = None
        self._handle = None
        if name is not None:
            self._handle = model.get_submodule(name).register_forward_pre_hook(self._keep)

    def _keep(self, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self.value = args[0]

    def take(self) -> torch.Tensor | None:
        value, self.value = self.value, None
        return value

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()


def matching_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                  student_features: torch.Tensor | None = None, teacher_features: torch.Tensor | None = None,
                  feature_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """``T² KL(softmax(t/T) ‖ softmax(s/T))`` plus ``feature_weight`` times the relative
    squared error ``‖f_s - f_t‖² / ‖f_t‖²`` of the feature maps (when both are given).

    Returns:
        ``(loss, {"kl": ..., "feature": ...})`` (the parts as floats, for logs).
    """
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), F.log_softmax(teacher_logits.float() / t, dim=1),
                  reduction="batchmean", log_target=True) * (t * t)
    parts = {"kl": float(kl.detach())}
    if feature_weight == 0.0 or student_features is None or teacher_features is None:
        return kl, parts
    fs, ft = student_features.float(), teacher_features.float()
    feat = (fs - ft).pow(2).sum() / ft.pow(2).sum().clamp_min(1e-12)
    parts["feature"] = float(feat.detach())
    return kl + feature_weight * feat, parts


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def module_teacher(teacher: nn.Module, precision: str = "float32") -> TeacherFn:
    """The original module as a :data:`TeacherFn`: logits and the feature map entering its
    last pooling layer, without gradients (``precision`` as in :class:`MatchingConfig`)."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    tap = _FeatureTap(teacher, feature_layer(teacher))
    device = next(teacher.parameters()).device

    @torch.no_grad()
    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        with _autocast(device, precision):
            logits = teacher(x)
        features = tap.take()
        return logits.float(), None if features is None else features.float()

    return run


@torch.no_grad()
def _logits(model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    model.eval()
    out = [model(images[i:i + batch_size].to(device, torch.float32)).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def _agreement(student_logits: torch.Tensor, reference_logits: torch.Tensor) -> dict[str, float]:
    """Top-1 agreement and mean ``KL(reference ‖ student)`` (temperature 1)."""
    kl = F.kl_div(F.log_softmax(student_logits, 1), F.log_softmax(reference_logits, 1), reduction="batchmean",
                  log_target=True)
    return {"agreement": float((student_logits.argmax(1) == reference_logits.argmax(1)).float().mean()),
            "kl": float(kl)}


def _learning_rate(step: int, total: int, config: MatchingConfig) -> float:
    """Linear warm-up, then cosine decay to zero at ``total`` steps: a function of the step
    alone, so a resumed run continues the same schedule."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, total - config.warmup_steps)
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(1.0, (step - config.warmup_steps) / span)))


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (a fixed mix, not Python's salted ``hash``)."""
    value = 0x9E3779B97F4A7C15
    for p in parts:
        value = (value ^ (int(p) + 0x632BE59BD9B4E019 + (value << 6) + (value >> 2))) & 0x7FFFFFFFFFFFFFFF
    return value


def _epoch_order(n: int, epoch: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, 1, epoch)))


# ----------------------------------------------------------------------------- checkpoints
def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`function_matching` (``weights_only``: nothing is
    unpickled). Raises :class:`DistillationError` for a file that is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a foreign or damaged file
        raise DistillationError(f"{Path(path).name} is not a readable distillation checkpoint: {e}") from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise DistillationError(f"{Path(path).name} is not a distillation checkpoint of format {CHECKPOINT_FORMAT}")
    return state


# ----------------------------------------------------------------------------- the loop
def function_matching(student: nn.Module, teacher: nn.Module, pool: torch.Tensor, select: torch.Tensor,
                      config: MatchingConfig, *, teacher_fn: TeacherFn | None = None,
                      mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,),
                      checkpoint: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                      time_limit_s: float | None = None, progress: bool = True,
                      log: Callable[[str], None] | None = None) -> MatchingResult:
    """Distil ``teacher`` into ``student`` (in place) by function matching.

    Args:
        student: the compressed model; only its compressed factors train
            (:func:`trainable_modules`). On return it holds the best epoch's weights (by
            agreement on ``select``), or its starting weights if no epoch beat them.
        teacher: the original model (frozen; it also gives the reference answers on
            ``select``, in float32).
        pool: training images ``(N, C, H, W)`` in model units (float16 is fine; no labels).
        select: selection images ``(M, C, H, W)``: the best epoch is chosen on them.
        config: :class:`MatchingConfig`.
        teacher_fn: a faster stand-in for the teacher on training views, returning
            ``(logits, features)``; default: ``teacher`` itself (:func:`module_teacher`).
        mean, std: per-channel normalisation of the model units (the views work on the
            ``[0, 1]`` image).
        checkpoint: file to resume from (when it exists) and to keep writing; ``None``
            keeps nothing on disk.
        device: ``cpu`` or ``cuda`` (models and batches are moved there).
        time_limit_s: stop after the step that passes this many seconds (a checkpoint is
            written; run again to continue). ``None``: run the whole schedule.
        progress: progress lines on stderr.
        log: where one-line messages go (default: nothing).

    Returns:
        The :class:`MatchingResult` (``finished`` is ``False`` when the time limit stopped it).

    Raises:
        DistillationError: bad inputs, or a checkpoint made with other settings.
    """
    t_start = time.perf_counter()
    log = log or (lambda _message: None)
    device = torch.device(device)
    if pool.ndim != 4 or select.ndim != 4 or len(pool) < 1 or len(select) < 1:
        raise DistillationError(f"pool and select must be non-empty (N, C, H, W) batches, got shapes "
                                f"{tuple(pool.shape)} and {tuple(select.shape)}")
    world, rank = distributed.world_size(), distributed.rank()
    if config.batch_size % world:
        raise DistillationError(f"batch_size {config.batch_size} does not split over {world} processes")
    steps_per_epoch = _steps_per_epoch(config.steps_per_epoch, config.batch_size, len(pool))
    total_steps = config.epochs * steps_per_epoch

    student.to(device).eval()  # eval mode: a deployable model's norms are folded, dropout off
    teacher.to(device).eval()
    names = trainable_modules(student)
    for p in student.parameters():
        p.requires_grad_(False)
    params = [p for name in names for p in student.get_submodule(name).parameters()]
    for p in params:
        p.requires_grad_(True)
    if not params:
        raise DistillationError("the student has no compressed factors to train")
    teach = teacher_fn or module_teacher(teacher, config.precision)
    tap_name = feature_layer(student) if config.feature_weight > 0 else None
    tap = _FeatureTap(student, tap_name)
    net: nn.Module = student
    if distributed.is_distributed():
        net = nn.parallel.DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    key = json.dumps(config.schedule_key(), sort_keys=True)
    path = Path(checkpoint) if checkpoint is not None else None
    step, history = 0, []
    if path is not None and path.is_file():
        state = load_checkpoint(path)
        if state["key"] != key:
            raise DistillationError(f"{path.name} was made with other settings; give a new --checkpoint or the "
                                    f"same settings (checkpoint: {state['key']})")
        if int(state["pool_images"]) != len(pool) or int(state["select_images"]) != len(select):
            raise DistillationError(f"{path.name} was made on {state['pool_images']} pool and "
                                    f"{state['select_images']} selection images, not {len(pool)} and {len(select)}")
        student.load_state_dict(state["student"])
        optimizer.load_state_dict(state["optimizer"])
        step, history = int(state["step"]), json.loads(state["history"])
        reference, before = state["reference"], json.loads(state["before"])
        best, best_state = json.loads(state["best"]), state["best_state"]
        log(f"resumed {path.name} at step {step}/{total_steps} (epoch {step // steps_per_epoch})")
    else:
        reference = _logits(teacher, select, config.batch_size, device)
        before = _agreement(_logits(student, select, config.batch_size, device), reference)
        best = {"epoch": 0, **before}
        best_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        log(f"before: agreement with the teacher on {len(select)} selection images {before['agreement']:.4f}")

    def snapshot() -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "key": key, "step": step, "pool_images": len(pool),
                "select_images": len(select), "student": student.state_dict(), "optimizer": optimizer.state_dict(),
                "reference": reference, "before": json.dumps(before), "best": json.dumps(best),
                "best_state": best_state, "history": json.dumps(history)}

    shard = config.batch_size // world
    epoch_seconds, epoch_images, epoch_loss = 0.0, 0, []
    stopped = False
    while step < total_steps:
        epoch, within = divmod(step, steps_per_epoch)
        order = _epoch_order(len(pool), epoch, config.seed)
        bar = progress_bar(range(within, steps_per_epoch), desc=f"distil epoch {epoch + 1}/{config.epochs}",
                           unit="step", disable=not progress, leave=False)
        for i in bar:
            t_step = time.perf_counter()
            start = (i * config.batch_size) % len(order)
            idx = order[start:start + config.batch_size]
            if len(idx) < config.batch_size:  # wrap around: every step has a full batch
                idx = torch.cat([idx, order[:config.batch_size - len(idx)]])
            generator = torch.Generator().manual_seed(_seed(config.seed, 2, step))
            view = draw_views(pool[idx].to(device), generator, config.views, mean, std)
            view = view[rank * shard:(rank + 1) * shard].contiguous(memory_format=torch.channels_last)
            t_logits, t_features = teach(view)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(step, total_steps, config)
            with _autocast(device, config.precision):
                s_logits = net(view)
            loss, parts = matching_loss(s_logits, t_logits.to(device), config.temperature, tap.take(),
                                        None if t_features is None else t_features.to(device),
                                        config.feature_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            epoch_seconds += time.perf_counter() - t_step
            epoch_images += config.batch_size
            epoch_loss.append(float(loss.detach()))
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", kl=f"{parts['kl']:.4f}")
            out_of_time = time_limit_s is not None and time.perf_counter() - t_start > time_limit_s
            if step % steps_per_epoch == 0:
                break
            if path is not None and rank == 0 and (step % config.checkpoint_every == 0 or out_of_time):
                _save_checkpoint(path, snapshot())
            if out_of_time:
                stopped = True
                break
        if stopped:
            break
        measured = _agreement(_logits(student, select, config.batch_size, device), reference)
        row = {"epoch": epoch + 1, "step": step, **measured, "loss": sum(epoch_loss) / max(1, len(epoch_loss)),
               "lr": _learning_rate(step - 1, total_steps, config), "train_seconds": epoch_seconds,
               "images": epoch_images, "wall_seconds": time.perf_counter() - t_start}
        history.append(row)
        epoch_seconds, epoch_images, epoch_loss = 0.0, 0, []
        improved = (measured["agreement"], -measured["kl"]) > (best["agreement"], -best["kl"])
        if improved:
            best = {"epoch": epoch + 1, **measured}
            best_state = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        log(f"epoch {epoch + 1}/{config.epochs}: selection agreement {measured['agreement']:.4f}, "
            f"KL {measured['kl']:.4f}, loss {row['loss']:.4f}, {row['train_seconds']:.0f} s of training"
            + (" (best)" if improved else ""))
        if path is not None and rank == 0:
            _save_checkpoint(path, snapshot())
        if time_limit_s is not None and time.perf_counter() - t_start > time_limit_s and step < total_steps:
            stopped = True
            break
    tap.close()
    finished = step >= total_steps
    if finished:
        student.load_state_dict(best_state)
    for p in student.parameters():
        p.requires_grad_(False)
    student.eval()
    return MatchingResult(config=config.to_dict(), trainable=names, pool_images=len(pool), select_images=len(select),
                          steps_per_epoch=steps_per_epoch, before=before, best=best, history=history,
                          finished=finished, seconds=time.perf_counter() - t_start)


def _steps_per_epoch(steps_per_epoch: int | None, batch_size: int, pool_images: int) -> int:
    """A run's steps per epoch: as configured, else one pass over the pool."""
    return steps_per_epoch or math.ceil(pool_images / batch_size)


def checkpoint_summary(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The best-so-far student weights kept in a checkpoint and where its run stands: the
    schedule (``config``), ``before``, ``best`` (``{"epoch", "agreement", "kl"}``),
    ``history``, ``step`` of ``total_steps``, ``finished``, ``pool_images`` and
    ``select_images``. A usable model from a run still in progress.

    Raises:
        DistillationError: as :func:`load_checkpoint`.
    """
    state = load_checkpoint(path)
    config = json.loads(state["key"])
    pool_images = int(state["pool_images"])
    step = int(state["step"])
    total = config["epochs"] * _steps_per_epoch(config["steps_per_epoch"], config["batch_size"], pool_images)
    return state["best_state"], {
        "config": config, "before": json.loads(state["before"]), "best": json.loads(state["best"]),
        "history": json.loads(state["history"]), "step": step, "total_steps": total, "finished": step >= total,
        "pool_images": pool_images, "select_images": int(state["select_images"])}


def best_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The best-so-far student weights kept in a checkpoint and their selection record
    (``{"epoch", "agreement", "kl"}``): a usable model from a run still in progress."""
    weights, summary = checkpoint_summary(path)
    return weights, summary["best"]

