"""FLOPs and parameter counts, measured the way every HSCC report states them.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` on one image (batch 1)
at the model's input size. It counts **2 FLOPs per multiply-add** of the matrix-like ops
(convolutions, ``mm``/``addmm``/``bmm``, attention) and nothing else: bias additions,
activations, pooling, normalisation and element-wise ops are free. For a ``Conv2d`` that is
``2 * C_out * (C_in / groups) * kH * kW * H_out * W_out`` with or without bias; for a
``Linear`` ``2 * in_features * out_features`` per row.

Parameters are counted as the ``numel`` of every parameter **and** buffer, because a
compressed model has to ship both.

>>> from torchvision.models import alexnet
>>> count_flops(alexnet(num_classes=4), input_shape=(1, 3, 224, 224))
1420217728
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .errors import ConfigError

__all__ = ["count_flops", "count_params", "flops_by_module", "input_shape_of"]

#: FlopCounterMode's key for the whole run.
_GLOBAL = "Global"


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def input_shape_of(model: nn.Module, input_shape: Sequence[int] | None = None, batch: int = 1) -> tuple[int, ...]:
    """The ``(N, C, H, W)`` input shape to run ``model`` at.

    ``input_shape`` wins when given (a 3-tuple ``(C, H, W)`` gets ``batch`` prepended).
    Otherwise the model must describe itself through an optional ``spec`` attribute with
    an ``input_shape(batch)`` method (any object will do; the product's model spec is
    one), which the compressor copies onto the compressed model.

    Raises:
        ConfigError: neither is available.
    """
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        return (batch, *shape) if len(shape) == 3 else shape
    spec = getattr(model, "spec", None)
    if spec is None or not callable(getattr(spec, "input_shape", None)):
        raise ConfigError(f"{type(model).__name__} does not state its input size; pass input_shape=(1, C, H, W)")
    return tuple(int(s) for s in spec.input_shape(batch))



def _run_counter(model: nn.Module, input_shape: Sequence[int] | None) -> FlopCounterMode:
    """One forward pass under a FlopCounterMode, in eval mode; the mode is restored after."""
    shape = input_shape_of(model, input_shape)
    x = torch.zeros(shape, device=_model_device(model))
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.inference_mode(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter


def count_flops(model: nn.Module, input_shape: Sequence[int] | None = None) -> int:
    """FLOPs of one forward pass (2 per multiply-add; bias and element-wise ops are free).

    Args:
        model: the network; evaluated in eval mode (its training flag is restored after).
        input_shape: ``(N, C, H, W)`` of the input; default from the model (:func:`input_shape_of`).
            Counts scale linearly with ``N``, so report batch 1.

    Returns:
        The total FLOPs of the pass.

    Raises:
        ConfigError: no ``input_shape`` was given and the model does not state its input size.
    """
    return int(_run_counter(model, input_shape).get_total_flops())


def flops_by_module(model: nn.Module, input_shape: Sequence[int] | None = None) -> dict[str, int]:
    """FLOPs of one forward pass per submodule, keyed by ``model.named_modules()`` path.

    FlopCounterMode reports *inclusive* counts under names of the form
    ``"<RootClass>.<dotted path>"`` (e.g. ``"AlexNetMRI.features.0"``) plus ``"Global"``.
    Here each count is *exclusive*: a module's own FLOPs minus those of its children, so a
    leaf module (``Conv2d``, ``Linear``) gets its whole count, a container gets only what
    its own ``forward`` computes (usually nothing), and the root's own ops (e.g. a
    ``torch.matmul`` in ``forward``) appear under ``""``. Only non-zero entries are kept;
    the values sum to :func:`count_flops`.

    Args:
        model: the network (see :func:`count_flops`).
        input_shape: ``(N, C, H, W)``; default from the model (:func:`input_shape_of`).

    Returns:
        ``{module path: FLOPs}`` in ``named_modules()`` order.
    """
    counts = _run_counter(model, input_shape).get_flop_counts()
    inclusive = {name: sum(int(v) for v in ops.values()) for name, ops in counts.items()}
    root = type(model).__name__
    modules = dict(model.named_modules())
    # The root module's own name is its class; "Global" also covers anything run
    # outside it (nothing, for a plain forward), so it is the root's inclusive count.
    totals = {path: inclusive.get(f"{root}.{path}" if path else root, 0) for path in modules}
    totals[""] = inclusive.get(_GLOBAL, 0)
    result: dict[str, int] = {}
    for path, module in modules.items():
        prefix = f"{path}." if path else ""
        children = sum(totals.get(prefix + name, 0) for name, _ in module.named_children())
        own = totals[path] - children
        if own:
            result[path] = own
    return result


def count_params(model: nn.Module) -> int:
    """Number of values the model must store: ``numel`` of all parameters and buffers.

    Shared tensors are counted once (as ``parameters()``/``buffers()`` de-duplicate them).
    """
    return sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
