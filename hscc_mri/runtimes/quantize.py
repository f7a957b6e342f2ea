"""INT8 that keeps the model's answers: measure every layer's int8 damage, keep the worst
in float32 until the quantised model agrees with the float32 one.

The procedure (NNCF's accuracy control, made explicit so every step is reported):

1. quantise every layer; measure top-1 agreement and mean KL against the float32 model
   on the check images; done if agreement >= the target;
2. layer by layer: quantise *only* that layer (all others float32) and measure its KL,
   which ranks the layers by how badly they quantise (on the first ``rank_images``
   calibration and check images: a ranking needs far fewer than the final model);
3. keep the ``k`` worst layers in float32, the smallest ``k`` (binary search) that
   reaches the target; each step is a full re-quantisation and measurement;
4. with several candidate quantiser settings (e.g. NNCF's overflow fix on the first layer
   or on every layer, which trade 8-bit weights against the u8 x s8 saturation of CPUs
   without VNNI): steps 1 and 3 for each, on the ranking of the first; the plan takes the
   candidate that meets the target with the fewest float32 layers (ties: the higher
   agreement), or the highest agreement when none meets it. Which setting suits a model
   is a property of its weights: a low-rank factor pair has larger products per weight
   than the dense layer it replaces, so it saturates where the dense one does not.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

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
        options: the quantiser settings chosen (keyword arguments of the runtime's
            int8 compile, e.g. ``{"overflow_fix": "enable"}``; ``{}``: its defaults).
        agreement, mean_kl: the final int8 model against float32 on the check images.
        target: the agreement asked for.
        all_int8: ``{"agreement", "mean_kl"}`` with every layer quantised.
        layers: per layer group, quantised alone: ``{"layer", "agreement", "mean_kl"}``.
        steps: each tried ``k`` of the chosen candidate: ``{"fp32_layers", "agreement", "mean_kl"}``.
        candidates: per candidate setting: ``{"options", "keep_fp32", "agreement",
            "mean_kl", "all_int8", "steps"}`` (the chosen one included).
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
    options: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)
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
    from ..inference import probabilities

    with torch.inference_mode():
        return probabilities(model, batches).astype(np.float64)


def _better(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """``a`` agrees more with float32 than ``b`` (on a tie: lower mean KL)."""
    return (a["agreement"], -a["mean_kl"]) > (b["agreement"], -b["mean_kl"])


def _search(measure: Callable[..., dict[str, float]], ranked: Sequence[str], target: float,
            full: dict[str, float], log: Callable[[str], None], tag: str) -> dict[str, Any]:
    """Binary search for the smallest ``k`` whose ``k`` worst layers in float32 reach the
    target (``full``: every layer int8, already measured). Returns ``{"keep_fp32",
    "agreement", "mean_kl", "steps"}``: the smallest ``k`` that met it, else the best tried
    (highest agreement, then lowest KL)."""
    best: tuple[int, dict[str, float]] = (0, full)
    steps: list[dict[str, Any]] = []
    lo, hi = 1, len(ranked) if full["agreement"] < target else 0  # every layer int8 already meets it: k = 0
    while lo <= hi:
        k = (lo + hi) // 2
        res = measure(ranked[:k])
        steps.append({"fp32_layers": k, **res})
        log(f"int8 ({tag}), {k} worst layer(s) in fp32: agreement {res['agreement']:.3f}, KL {res['mean_kl']:.4f}")
        if res["agreement"] >= target:
            best, hi = (k, res), k - 1
        else:
            if best[1]["agreement"] < target and _better(res, best[1]):
                best = (k, res)
            lo = k + 1
    k, res = best
    return {"keep_fp32": list(ranked[:k]), "agreement": res["agreement"], "mean_kl": res["mean_kl"], "steps": steps}


def _choose(candidates: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    """The candidate meeting ``target`` with the fewest float32 layers (ties: the higher
    agreement), else the one with the highest agreement."""
    met = [c for c in candidates if c["agreement"] >= target]
    if met:
        return min(met, key=lambda c: (len(c["keep_fp32"]), -c["agreement"]))
    return max(candidates, key=lambda c: (c["agreement"], -c["mean_kl"]))


def plan_int8(model: nn.Module, runtime: str, calibration: Sequence[torch.Tensor], check: Sequence[torch.Tensor],
              target: float = 0.99, layerwise: bool = True, progress: bool = True,
              log: Callable[[str], None] | None = None, rank_images: int | None = 64,
              options: Sequence[Mapping[str, Any]] = ({},)) -> Int8Plan:
    """Choose which layers of ``model`` stay float32 (and, among ``options``, which
    quantiser settings) so that int8 keeps ``target`` agreement.

    Args:
        model: the PyTorch model (dense or compressed).
        runtime: ``openvino`` or ``onnxruntime``.
        calibration: input batches for the activation ranges.
        check: input batches on which int8 is compared with float32 (agreement, KL).
        target: top-1 agreement with the float32 model to reach.
        layerwise: measure every layer alone (step 2) even when all-int8 meets the target.
        rank_images: images of calibration and check used for the ranking (``None``: all).
        options: candidate quantiser settings, keyword arguments of the runtime's int8
            compile (:func:`~hscc_mri.runtimes.select.compile_model`'s ``int8_options``);
            the layers are ranked under the first.
        progress: a progress bar on stderr over the quantisations.
        log: one-line messages (default: stderr).

    Returns:
        An :class:`Int8Plan`; ``met`` is false when even keeping every measured layer in
        float32 did not reach the target (then ``keep_fp32`` is the best found).
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    options = [dict(o) for o in options] or [{}]
    t0 = time.perf_counter()
    ref = _probs(model, check)
    groups = layer_groups(model)
    bar = progress_bar(total=len(options) + len(groups), desc=f"int8 plan ({runtime})", unit="quant",
                       file=sys.stderr, disable=not progress, leave=False)

    def measure(keep: Sequence[str], opts: Mapping[str, Any], calib: Sequence[torch.Tensor] = calibration,
                images: Sequence[torch.Tensor] = check, expected: np.ndarray = ref) -> dict[str, float]:
        quant = compile_model(model, runtime, "int8", calibration=calib, keep_fp32=keep, int8_options=opts)
        bar.update()
        return fidelity(expected, _probs(quant, images))

    def tag(opts: Mapping[str, Any]) -> str:
        return ", ".join([runtime] + [f"{k}={v}" for k, v in sorted(opts.items())])

    rank_calib, rank_check = _first(calibration, rank_images), _first(check, rank_images)
    rank_ref = _probs(model, rank_check)
    n_rank = int(sum(len(b) for b in rank_check))
    plan = Int8Plan(runtime, [], 0.0, float("inf"), target, options=options[0],
                    check_images=int(sum(len(b) for b in check)),
                    calibration_images=int(sum(len(b) for b in calibration)), rank_images=n_rank)
    try:
        fulls = []
        for opts in options:
            fulls.append(measure([], opts))
            log(f"int8 ({tag(opts)}), every layer: agreement {fulls[-1]['agreement']:.3f}, "
                f"KL {fulls[-1]['mean_kl']:.4f}")
        if not layerwise and any(f["agreement"] >= target for f in fulls):
            i = next(i for i, f in enumerate(fulls) if f["agreement"] >= target)
            plan.options, plan.all_int8 = options[i], fulls[i]
            plan.agreement, plan.mean_kl = fulls[i]["agreement"], fulls[i]["mean_kl"]
            plan.candidates = [{"options": o, "keep_fp32": [], "all_int8": f, "steps": [], **f}
                               for o, f in zip(options, fulls)]
            return plan
        for g in groups:
            alone = measure([h for h in groups if h != g], options[0], rank_calib, rank_check, rank_ref)
            plan.layers.append({"layer": g, **alone})
            log(f"int8 ({tag(options[0])}), only {g} quantised: agreement {alone['agreement']:.3f}, "
                f"KL {alone['mean_kl']:.4f}")
        ranked = [d["layer"] for d in sorted(plan.layers, key=lambda d: -d["mean_kl"])]
        bar.total += len(options) * int(np.ceil(np.log2(len(ranked) + 1)))
        for opts, full in zip(options, fulls):
            found = _search(lambda keep, o=opts: measure(keep, o), ranked, target, full, log, tag(opts))
            plan.candidates.append({"options": opts, "all_int8": full, **found})
        chosen = _choose(plan.candidates, target)
        plan.options, plan.all_int8, plan.steps = chosen["options"], chosen["all_int8"], chosen["steps"]
        plan.keep_fp32, plan.agreement, plan.mean_kl = chosen["keep_fp32"], chosen["agreement"], chosen["mean_kl"]
        if len(options) > 1:
            log(f"int8 ({runtime}): chose {tag(plan.options)} with {len(plan.keep_fp32)} layer(s) in fp32, "
                f"agreement {plan.agreement:.3f}")
        return plan
    finally:
        bar.close()
        plan.seconds = time.perf_counter() - t0
