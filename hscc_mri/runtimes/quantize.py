"""INT8 that keeps the model's answers: measure every layer's int8 damage, keep the worst
in float32 until the quantised model agrees with the float32 one.

The procedure (NNCF's accuracy control, made explicit so every step is reported):

1. quantise every layer; measure top-1 agreement and mean KL against the float32 model
   on the check images; done if agreement >= the target;
2. layer by layer: quantise *only* that layer (all others float32) and measure its KL,
   which ranks the layers by how badly they quantise (on the first ``rank_images``
   calibration and check images: a ranking needs far fewer than the final model);
3. keep the ``k`` worst layers in float32, the smallest ``k`` (binary search) that
   reaches the target; each step is a full re-quantisation and measurement.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from hscc_core import fidelity
from hscc_core.progress import progress_bar

from .export import layer_groups
from .select import compile_model

__all__ = ["Int8Plan", "plan_int8"]


@dataclass
class Int8Plan:
    """The outcome of :func:`plan_int8`.

    Attributes:
        runtime: the runtime quantised for.
        keep_fp32: the layer groups left in float32 (worst first).
        agreement, mean_kl: the final int8 model against float32 on the check images.
        target: the agreement asked for.
        all_int8: ``{"agreement", "mean_kl"}`` with every layer quantised.
        layers: per layer group, quantised alone: ``{"layer", "agreement", "mean_kl"}``.
        steps: each tried ``k``: ``{"fp32_layers", "agreement", "mean_kl"}``.
        check_images, calibration_images, rank_images: how many images each role used
            (``rank_images``: calibration and check images of the layer-by-layer ranking).
        seconds: wall time of the whole procedure.
    """

    runtime: str
    keep_fp32: list[str]
    agreement: float
    mean_kl: float
    target: float
    all_int8: dict[str, float] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    check_images: int = 0
    calibration_images: int = 0
    rank_images: int = 0
    seconds: float = 0.0

    @property
    def met(self) -> bool:
        return self.agreement >= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def _first(batches: Sequence[torch.Tensor], n: int | None) -> list[torch.Tensor]:
    """The first ``n`` images of ``batches``, as batches (all when ``n`` is ``None``)."""
    if n is None:
        return list(batches)
    out, left = [], n
    for b in batches:
        if left <= 0:
            break
        out.append(b[:left])
        left -= len(out[-1])
    return out


def _probs(model: nn.Module, batches: Sequence[torch.Tensor]) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([torch.softmax(model(b).float(), dim=1).double().numpy() for b in batches])


def plan_int8(model: nn.Module, runtime: str, calibration: Sequence[torch.Tensor], check: Sequence[torch.Tensor],
              target: float = 0.99, layerwise: bool = True, progress: bool = True,
              log: Callable[[str], None] | None = None, rank_images: int | None = 64) -> Int8Plan:
    """Choose which layers of ``model`` stay float32 so that int8 keeps ``target`` agreement.

    Args:
        model: the PyTorch model (dense or compressed).
        runtime: ``openvino`` or ``onnxruntime``.
        calibration: input batches for the activation ranges.
        check: input batches on which int8 is compared with float32 (agreement, KL).
        target: top-1 agreement with the float32 model to reach.
        layerwise: measure every layer alone (step 2) even when all-int8 meets the target.
        rank_images: images of calibration and check used for the ranking (``None``: all).
        progress: a progress bar on stderr over the quantisations.
        log: one-line messages (default: stderr).

    Returns:
        An :class:`Int8Plan`; ``met`` is false when even keeping every measured layer in
        float32 did not reach the target (then ``keep_fp32`` is the best found).
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    ref = _probs(model, check)
    groups = layer_groups(model)
    bar = progress_bar(total=1 + len(groups), desc=f"int8 plan ({runtime})", unit="quant", file=sys.stderr,
                       disable=not progress, leave=False)

    def measure(keep: Sequence[str], calib: Sequence[torch.Tensor] = calibration,
                images: Sequence[torch.Tensor] = check, expected: np.ndarray = ref) -> dict[str, float]:
        quant = compile_model(model, runtime, "int8", calibration=calib, keep_fp32=keep)
        bar.update()
        return fidelity(expected, _probs(quant, images))

    rank_calib, rank_check = _first(calibration, rank_images), _first(check, rank_images)
    rank_ref = _probs(model, rank_check)
    n_rank = int(sum(len(b) for b in rank_check))

    try:
        full = measure([])
        log(f"int8 ({runtime}), every layer: agreement {full['agreement']:.3f}, KL {full['mean_kl']:.4f}")
        plan = Int8Plan(runtime, [], full["agreement"], full["mean_kl"], target, all_int8=full,
                        check_images=int(sum(len(b) for b in check)),
                        calibration_images=int(sum(len(b) for b in calibration)), rank_images=n_rank)
        if full["agreement"] >= target and not layerwise:
            return plan
        for g in groups:
            alone = measure([h for h in groups if h != g], rank_calib, rank_check, rank_ref)
            plan.layers.append({"layer": g, **alone})
            log(f"int8 ({runtime}), only {g} quantised: agreement {alone['agreement']:.3f}, "
                f"KL {alone['mean_kl']:.4f}")
        ranked = [d["layer"] for d in sorted(plan.layers, key=lambda d: -d["mean_kl"])]
        if full["agreement"] >= target:
            return plan
        # Binary search for the smallest k whose k worst layers in fp32 reach the target.
        lo, hi, best = 1, len(ranked), None
        bar.total += int(np.ceil(np.log2(len(ranked) + 1)))
        while lo <= hi:
            k = (lo + hi) // 2
            keep = ranked[:k]
            res = measure(keep)
            plan.steps.append({"fp32_layers": k, **res})
            log(f"int8 ({runtime}), {k} worst layer(s) in fp32: agreement {res['agreement']:.3f}, "
                f"KL {res['mean_kl']:.4f}")
            if res["agreement"] >= target:
                best, hi = (keep, res), k - 1
            else:
                if best is None or res["agreement"] > plan.agreement:
                    plan.keep_fp32, plan.agreement, plan.mean_kl = list(keep), res["agreement"], res["mean_kl"]
                lo = k + 1
        if best is not None:
            plan.keep_fp32, plan.agreement, plan.mean_kl = list(best[0]), best[1]["agreement"], best[1]["mean_kl"]
        return plan
    finally:
        bar.close()
        if "plan" in locals():
            plan.seconds = time.perf_counter() - t0
