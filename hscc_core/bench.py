"""Side-by-side CPU benchmark of two models: FLOPs, parameters, latency, speed-up.

The measurement protocol (design §9) is fixed so that numbers from different runs mean
the same thing:

* both models run in **one process**, under the same ``torch.set_num_threads`` and the same
  memory format, on the same fixed-seed random input of their (shared) input shape;
* each is warmed up, then timed **interleaved** (A B, B A, A B, ...) with
  ``time.perf_counter`` under ``torch.inference_mode()``, so drift in machine load hits
  both alike and neither always runs first (cache state, turbo);
* per batch size we report the median and the 90th percentile of the runs;
* **speed-up** = median(A) / median(B) (> 1: B is faster);
* **FLOPs ratio** = FLOPs(A) / FLOPs(B) at batch 1 (see :mod:`hscc_core.flops`);
* **efficiency** = speed-up / FLOPs ratio: 1.0 means wall time fell exactly as much as
  FLOPs did; the design's bar is >= 0.7.

>>> from torchvision.models import alexnet
>>> res = bench_pair(alexnet(), alexnet(), input_shape=(3, 224, 224), batch_sizes=(1,), runs=20)
>>> print(res.table())  # doctest: +SKIP
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .flops import count_flops, count_params, input_shape_of
from .errors import ConfigError
from .progress import progress_bar

__all__ = ["BenchResult", "LatencyStats", "ModelBench", "bench_pair"]


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one model at one batch size.

    Attributes:
        median_ms: median wall time of one forward pass of the whole batch, milliseconds.
        p90_ms: 90th percentile of the same runs (``numpy.percentile``, linear).
        runs: number of timed runs.
        batch: batch size ``N`` of the input ``(N, C, H, W)``.
    """

    median_ms: float
    p90_ms: float
    runs: int
    batch: int

    @classmethod
    def from_seconds(cls, seconds: Sequence[float], batch: int) -> "LatencyStats":
        """Summarise raw ``perf_counter`` durations (seconds) of ``batch``-sized runs."""
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(float(np.median(ms)), float(np.percentile(ms, 90)), int(ms.size), int(batch))

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "median_ms": self.median_ms, "p90_ms": self.p90_ms, "runs": self.runs}


@dataclass(frozen=True)
class ModelBench:
    """What was measured for one model of the pair.

    Attributes:
        name: what the caller called the model (e.g. a registry name or a file name).
        flops: FLOPs of one forward pass at batch 1.
        params: ``numel`` of parameters and buffers.
        latency: batch size -> :class:`LatencyStats`.
    """

    name: str
    flops: int
    params: int
    latency: dict[int, LatencyStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "flops": self.flops, "gflops": self.flops / 1e9, "params": self.params,
                "latency": [s.to_dict() for _, s in sorted(self.latency.items())]}


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.inf


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class BenchResult:
    """A benchmark of model A (usually the original) against model B (the compressed one).

    Attributes:
        a, b: the two models' measurements.
        threads: ``torch.get_num_threads()`` during timing.
        channels_last: both models and inputs used ``torch.channels_last``.
        torch_version: ``torch.__version__``.
        warmup: untimed runs per model and batch size before timing.
    """

    a: ModelBench
    b: ModelBench
    threads: int
    channels_last: bool
    torch_version: str
    warmup: int = 0

    @property
    def batch_sizes(self) -> list[int]:
        """Batch sizes measured for both models, ascending."""
        return sorted(set(self.a.latency) & set(self.b.latency))

    @property
    def flops_ratio(self) -> float:
        """FLOPs(A) / FLOPs(B) at batch 1 (``inf`` if B has no counted FLOPs)."""
        return _ratio(self.a.flops, self.b.flops)

    @property
    def params_ratio(self) -> float:
        """params(A) / params(B)."""
        return _ratio(self.a.params, self.b.params)

    @property
    def speedup(self) -> dict[int, float]:
        """Batch size -> median(A) / median(B); > 1 means B is faster."""
        return {n: _ratio(self.a.latency[n].median_ms, self.b.latency[n].median_ms) for n in self.batch_sizes}

    @property
    def efficiency(self) -> dict[int, float]:
        """Batch size -> speed-up / FLOPs ratio (1.0: time falls exactly as FLOPs do)."""
        ratio = self.flops_ratio
        return {n: s / ratio if math.isfinite(ratio) and ratio else math.nan for n, s in self.speedup.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; per-batch maps are keyed by the batch size as a string,
        and non-finite ratios become ``None``."""
        return {
            "model_a": self.a.to_dict(),
            "model_b": self.b.to_dict(),
            "flops_ratio": _finite(self.flops_ratio),
            "params_ratio": _finite(self.params_ratio),
            "speedup": {str(n): _finite(v) for n, v in self.speedup.items()},
            "efficiency": {str(n): _finite(v) for n, v in self.efficiency.items()},
            "threads": self.threads,
            "channels_last": self.channels_last,
            "warmup": self.warmup,
            "torch_version": self.torch_version,
        }

    def table(self) -> str:
        """A plain-text table: FLOPs, parameters and per-batch latency of A and B, their
        ratios, and the efficiency of each speed-up."""
        speedup, efficiency = self.speedup, self.efficiency
        rows: list[tuple[str, str, str, str, str]] = [
            ("", f"A: {self.a.name}", f"B: {self.b.name}", "A/B", "efficiency"),
            ("GFLOPs (batch 1)", f"{self.a.flops / 1e9:.3f}", f"{self.b.flops / 1e9:.3f}",
             f"{self.flops_ratio:.2f}x", ""),
            ("params (M)", f"{self.a.params / 1e6:.3f}", f"{self.b.params / 1e6:.3f}",
             f"{self.params_ratio:.2f}x", ""),
        ]
        for n in self.batch_sizes:
            la, lb = self.a.latency[n], self.b.latency[n]
            rows.append((f"batch {n}: median ms", f"{la.median_ms:.2f}", f"{lb.median_ms:.2f}",
                         f"{speedup[n]:.2f}x", f"{efficiency[n]:.2f}"))
            rows.append((f"batch {n}: p90 ms", f"{la.p90_ms:.2f}", f"{lb.p90_ms:.2f}", "", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip()
                 for r in rows]
        runs = sorted({s.runs for m in (self.a, self.b) for s in m.latency.values()})
        lines.append(
            f"torch {self.torch_version}, {self.threads} thread(s), "
            f"{'channels_last' if self.channels_last else 'contiguous (NCHW)'}, "
            f"{'/'.join(map(str, runs))} interleaved runs after {self.warmup} warm-up")
        lines.append("A/B of medians = speed-up; efficiency = speed-up / FLOPs ratio")
        return "\n".join(lines)


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


def bench_pair(
    model_a: nn.Module,
    model_b: nn.Module,
    batch_sizes: Sequence[int] = (1, 16),
    runs: int = 30,
    warmup: int = 5,
    threads: int = 2,
    channels_last: bool = False,
    name_a: str | None = None,
    name_b: str | None = None,
    progress: bool = True,
    input_shape: Sequence[int] | None = None,
) -> BenchResult:
    """Measure FLOPs, parameters and interleaved latency of two models on the same input.

    Both models are put in eval mode and, with ``channels_last``, converted in place to
    ``torch.channels_last`` (and back to contiguous afterwards); their training flags and
    the process's thread count are restored on return.

    Args:
        model_a: the reference model (speed-up is relative to it): any ``nn.Module``.
        model_b: the model under test, taking the same input.
        batch_sizes: batch sizes to time, each on a fixed-seed ``torch.rand`` input of shape
            ``(batch, *input_shape)``.
        runs: timed runs per model and batch size (>= 1; the design asks for >= 20).
        warmup: untimed runs per model and batch size before timing.
        threads: ``torch.set_num_threads`` during the benchmark.
        channels_last: run both models and inputs in ``torch.channels_last``.
        name_a, name_b: names for the report (default: the models' class names).
        progress: show a tqdm bar on stderr.
        input_shape: ``(C, H, W)`` of one input; default: what the models state (see
            :func:`hscc_core.flops.input_shape_of`), which must be the same for both.

    Returns:
        A :class:`BenchResult`.

    Raises:
        ConfigError: no input shape is given or stated, the models state different ones, or
            an argument is out of range.
    """
    if input_shape is not None:
        shape = input_shape_of(model_a, input_shape)[1:]
    else:
        shape_a, shape_b = input_shape_of(model_a), input_shape_of(model_b)
        if shape_a != shape_b:
            raise ConfigError(f"the models take different inputs: A {shape_a[1:]} vs B {shape_b[1:]} (C, H, W)")
        shape = shape_a[1:]
    batch_sizes = [int(n) for n in batch_sizes]
    if not batch_sizes or min(batch_sizes) < 1:
        raise ConfigError(f"batch_sizes must be positive integers, got {batch_sizes}")
    if runs < 1 or warmup < 0 or threads < 1:
        raise ConfigError(f"need runs >= 1, warmup >= 0, threads >= 1; got {runs}, {warmup}, {threads}")
    device = _model_device(model_a)
    if _model_device(model_b) != device:
        raise ConfigError(f"the models are on different devices: {device} vs {_model_device(model_b)}")

    models = (model_a, model_b)
    was_training = [m.training for m in models]
    flops = [count_flops(m, (1, *shape)) for m in models]
    params = [count_params(m) for m in models]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    previous_threads = torch.get_num_threads()
    times: list[dict[int, list[float]]] = [{n: [] for n in batch_sizes}, {n: [] for n in batch_sizes}]
    bar = progress_bar(total=len(batch_sizes) * 2 * (warmup + runs), desc="bench", unit="run",
                       file=sys.stderr, disable=not progress, leave=False)
    try:
        torch.set_num_threads(threads)
        for m in models:
            m.eval()
            if channels_last:
                m.to(memory_format=fmt)
        with torch.inference_mode():
            for n in batch_sizes:
                gen = torch.Generator().manual_seed(n)
                x = torch.rand((n, *shape), generator=gen).to(device, memory_format=fmt)
                bar.set_postfix_str(f"batch {n}")
                for _ in range(warmup):
                    for m in models:
                        m(x)
                        bar.update()
                sync()
                for r in range(runs):
                    # A B, B A, A B, ...: interleaved, and neither model always goes first.
                    for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                        t0 = time.perf_counter()
                        models[i](x)
                        sync()
                        times[i][n].append(time.perf_counter() - t0)
                        bar.update()
    finally:
        bar.close()
        torch.set_num_threads(previous_threads)
        for m, training in zip(models, was_training):
            if channels_last:
                m.to(memory_format=torch.contiguous_format)
            m.train(training)

    names = (name_a or type(model_a).__name__, name_b or type(model_b).__name__)
    benches = [ModelBench(names[i], flops[i], params[i],
                          {n: LatencyStats.from_seconds(times[i][n], n) for n in batch_sizes})
               for i in range(2)]
    return BenchResult(benches[0], benches[1], threads=threads, channels_last=channels_last,
                       torch_version=torch.__version__, warmup=warmup)
