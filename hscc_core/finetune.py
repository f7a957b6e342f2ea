"""Recovery: knowledge-distillation fine-tuning of a compressed model (HSCC.md §8).

The compressed model (student) learns to match the original's (teacher's)
temperature-softened outputs, plus cross-entropy when labels exist. A held-out split
of the images drives early stopping; the best-on-validation weights are kept.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import DistillationError
from .progress import progress_bar


@dataclass(frozen=True)
class FinetuneConfig:
    """Distillation settings.

    Attributes:
        epochs: maximum passes over the training split (0 disables fine-tuning).
        lr: peak learning rate (AdamW, cosine decay).
        temperature: softening temperature ``T`` of the KL term (scaled by ``T²``).
        label_weight: weight of cross-entropy when labels exist (KL gets ``1 - w``).
        batch_size: images per step.
        val_fraction: share of the images held out for early stopping.
        patience: epochs without validation improvement before stopping.
        seed: split and data order.
    """

    epochs: int = 3
    lr: float = 1e-4
    temperature: float = 4.0
    label_weight: float = 0.3
    batch_size: int = 32
    val_fraction: float = 0.2
    patience: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise DistillationError(f"epochs must be >= 0, got {self.epochs}")
        if not 0.0 < self.val_fraction < 1.0:
            raise DistillationError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0.0 <= self.label_weight <= 1.0:
            raise DistillationError(f"label_weight must be in [0, 1], got {self.label_weight}")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                      labels: torch.Tensor | None = None, label_weight: float = 0.0) -> torch.Tensor:
    """``T² KL(softmax(t/T) ‖ softmax(s/T))``, mixed with cross-entropy when ``labels`` are given."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                  reduction="batchmean", log_target=True) * t * t
    if labels is None or label_weight == 0.0:
        return kl
    return (1 - label_weight) * kl + label_weight * F.cross_entropy(student_logits, labels)


def _stack(batches: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    xs, ys = [], []
    for item in batches:
        if isinstance(item, (tuple, list)):
            xs.append(torch.as_tensor(item[0]).float())
            ys.append(torch.as_tensor(item[1]).long())
        else:
            xs.append(torch.as_tensor(item).float())
    return torch.cat(xs), (torch.cat(ys) if ys and len(ys) == len(xs) else None)


@torch.no_grad()
def _teacher_logits(teacher: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    teacher.eval()
    return torch.cat([teacher(x[i:i + batch_size]).float() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def _validation_loss(student: nn.Module, x: torch.Tensor, t_logits: torch.Tensor, y: torch.Tensor | None,
                     cfg: FinetuneConfig) -> tuple[float, float]:
    student.eval()
    total, agree = 0.0, 0
    for i in range(0, len(x), cfg.batch_size):
        s = student(x[i:i + cfg.batch_size]).float()
        t = t_logits[i:i + cfg.batch_size]
        yy = None if y is None else y[i:i + cfg.batch_size]
        total += float(distillation_loss(s, t, cfg.temperature, yy, cfg.label_weight)) * len(s)
        agree += int((s.argmax(1) == t.argmax(1)).sum())
    return total / len(x), agree / len(x)


def distill(student: nn.Module, teacher: nn.Module, data: Sequence[Any], config: FinetuneConfig,
            progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``student`` in place against ``teacher`` on ``data``.

    Args:
        student: the compressed model (trained in place; best-on-validation weights kept).
        teacher: the original model (frozen).
        data: batches of images ``(N, C, H, W)`` or ``(images, labels)`` pairs; with labels
            the loss adds cross-entropy.
        config: :class:`FinetuneConfig`.

    Returns:
        A JSON-able record: config, epochs run, best epoch, validation loss and teacher
        agreement before and after, seconds.
    """
    t0 = time.perf_counter()
    x, y = _stack(data)
    gen = torch.Generator().manual_seed(config.seed)
    perm = torch.randperm(len(x), generator=gen)
    n_val = max(1, int(round(config.val_fraction * len(x))))
    if len(x) - n_val < 1:
        raise DistillationError(f"fine-tuning needs at least 2 images, got {len(x)}")
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    t_logits = _teacher_logits(teacher, x, config.batch_size)
    yv = None if y is None else y[val_idx]
    best_loss, best_agree = _validation_loss(student, x[val_idx], t_logits[val_idx], yv, config)
    record: dict[str, Any] = {"config": asdict(config), "labels": y is not None, "images_train": len(train_idx),
                              "images_val": n_val, "val_loss_before": best_loss, "val_agreement_before": best_agree,
                              "history": []}
    best_state, best_epoch, stale = copy.deepcopy(student.state_dict()), 0, 0
    params = [p for p in student.parameters() if p.requires_grad]
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, config.epochs * steps_per_epoch))
    # The student trains in eval mode: a deployable model has its BatchNorm folded, and its
    # Dropout rate need not be the one it was trained with (our AlexNet trains without
    # dropout but keeps torchvision's Dropout(0.5) layers); switching them on made the first
    # epoch of distillation triple the validation loss (report of 2026-11-25).
    student.eval()
    for epoch in range(1, config.epochs + 1):
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        bar = progress_bar(range(0, len(order), config.batch_size), desc=f"distill epoch {epoch}/{config.epochs}",
                           unit="batch", disable=not progress, leave=False)
        for i in bar:
            idx = order[i:i + config.batch_size]
            loss = distillation_loss(student(x[idx]).float(), t_logits[idx], config.temperature,
                                     None if y is None else y[idx], config.label_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        val_loss, val_agree = _validation_loss(student, x[val_idx], t_logits[val_idx], yv, config)
        record["history"].append({"epoch": epoch, "val_loss": val_loss, "val_agreement": val_agree})
        if val_loss < best_loss - 1e-6:
            best_loss, best_agree, best_epoch, stale = val_loss, val_agree, epoch, 0
            best_state = copy.deepcopy(student.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    student.load_state_dict(best_state)
    student.eval()
    record.update(epochs_run=len(record["history"]), best_epoch=best_epoch, val_loss_after=best_loss,
                  val_agreement_after=best_agree, seconds=time.perf_counter() - t0)
    return record

