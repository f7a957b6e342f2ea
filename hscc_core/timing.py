"""Latency of forward passes: the inference layout, one model timed, several interleaved."""
from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch
from torch import nn

__all__ = ["optimize_for_inference", "time_forward", "time_forward_interleaved"]


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """Eval mode and ``torch.channels_last`` weights, in place; returns ``model``.

    On CPU, oneDNN's convolutions run markedly faster on channels-last tensors, for the
    original and the compressed models alike (measured with the ``bench`` command, which
    times both layouts). :func:`time_forward` converts inputs to match.
    """
    return model.eval().to(memory_format=torch.channels_last)


def _wants_channels_last(model: nn.Module) -> bool:
    # A k x k kernel with several input channels tells the layout; 1x1 kernels are both.
    weight = next((p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1),
                  None)
    return weight is not None and not weight.is_contiguous()


def time_forward(model: nn.Module, x: torch.Tensor, repeats: int = 5, warmup: int = 1) -> tuple[torch.Tensor, float]:
    """Run ``model(x)`` ``warmup + repeats`` times; return the output and the median
    latency in milliseconds of the timed runs. The input follows the model's memory
    format (see :func:`optimize_for_inference`)."""
    if x.dim() == 4 and _wants_channels_last(model):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(warmup):
            out = model(x)
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            out = model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return out, statistics.median(times)


def time_forward_interleaved(models: Sequence[nn.Module], x: torch.Tensor, repeats: int = 7,
                             warmup: int = 1) -> list[tuple[torch.Tensor, float]]:
    """Time several models on the same input, interleaved so machine load hits all alike.

    Each model runs ``warmup`` untimed passes, then the models take turns for ``repeats``
    rounds, the order reversed every other round (A B, B A, ...), all in this thread
    under ``torch.inference_mode()`` with the current ``torch.get_num_threads()``. Each
    model gets the input in its own memory format (see :func:`optimize_for_inference`),
    converted before timing.

    Args:
        models: the models to compare (eval mode).
        x: one input batch ``(N, C, H, W)``.
        repeats: timed passes per model.
        warmup: untimed passes per model first.

    Returns:
        Per model, in the given order: ``(output of the last pass, median latency in ms)``.
    """
    inputs = [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 and _wants_channels_last(m) else x
              for m in models]
    times: list[list[float]] = [[] for _ in models]
    outs: list[torch.Tensor | None] = [None] * len(models)
    with torch.inference_mode():
        for i, m in enumerate(models):
            for _ in range(warmup):
                outs[i] = m(inputs[i])
        for r in range(max(1, repeats)):
            order = range(len(models)) if r % 2 == 0 else reversed(range(len(models)))
            for i in order:
                t0 = time.perf_counter()
                outs[i] = models[i](inputs[i])
                times[i].append((time.perf_counter() - t0) * 1e3)
    return [(out, statistics.median(t)) for out, t in zip(outs, times)]
