"""How the compressor sees a model: an ordered list of stages and the target layers.

Sequential refit needs to run a model one stage at a time. Our classifiers (and
torchvision's AlexNet/VGG) are ``features → [avgpool] → flatten → classifier``; this
module unrolls that pattern into a flat list. Other models still work with the
non-sequential calibration (forward hooks), which needs no unrolling.
"""
from __future__ import annotations

import fnmatch
from typing import Sequence

import torch
from torch import nn

from .errors import CompressionError


def sequential_stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``[(dotted_name, module), ...]`` whose composition equals ``model.forward``.

    Raises:
        CompressionError: if the model is not of the ``features/avgpool/classifier`` form.
    """
    if not (isinstance(getattr(model, "features", None), nn.Sequential)
            and isinstance(getattr(model, "classifier", None), nn.Sequential)):
        raise CompressionError(f"{type(model).__name__} is not a features/classifier model; "
                               "sequential refit needs one (use sequential=False)")
    stages = [(f"features.{n}", m) for n, m in model.features.named_children()]
    if isinstance(getattr(model, "avgpool", None), nn.Module):
        stages.append(("avgpool", model.avgpool))
    stages.append(("<flatten>", nn.Flatten(1)))
    stages += [(f"classifier.{n}", m) for n, m in model.classifier.named_children()]
    return stages


def is_target_type(module: nn.Module) -> bool:
    """A layer HSCC can factorise: ungrouped ``Conv2d`` or ``Linear``."""
    return (isinstance(module, nn.Conv2d) and module.groups == 1) or isinstance(module, nn.Linear)


def target_layers(model: nn.Module, include: Sequence[str] | None = None,
                  exclude: Sequence[str] | None = None) -> list[str]:
    """Names of the layers to compress, in network order.

    Default (HSCC.md §1): every conv/linear except the first conv and the last linear.
    ``include`` / ``exclude`` are shell-style patterns on module names
    (e.g. ``features.*``); ``include`` replaces the default selection.

    Raises:
        CompressionError: ``include`` matches no layer.
    """
    candidates = [n for n, m in model.named_modules() if n and is_target_type(m)]
    if include:
        chosen = [n for n in candidates if any(fnmatch.fnmatch(n, p) for p in include)]
        if not chosen:
            raise CompressionError(f"the include patterns {list(include)} match no layer; layers: "
                                   f"{', '.join(candidates)}")
    else:
        convs = [n for n in candidates if isinstance(model.get_submodule(n), nn.Conv2d)]
        linears = [n for n in candidates if isinstance(model.get_submodule(n), nn.Linear)]
        drop = set(convs[:1]) | set(linears[-1:])
        chosen = [n for n in candidates if n not in drop]
    if exclude:
        chosen = [n for n in chosen if not any(fnmatch.fnmatch(n, p) for p in exclude)]
    return chosen


@torch.no_grad()
def layer_shapes(model: nn.Module, names: Sequence[str],
                 input_shape: Sequence[int] | None = None) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Input and output shapes (batch 1) of each named layer at the model's input size
    (``input_shape``, else the model's own; see :func:`hscc_core.flops.input_shape_of`)."""
    from .flops import input_shape_of

    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: shapes.__setitem__(n, (tuple(i[0].shape), tuple(o.shape)))) for n in names]
    try:
        model.eval()(torch.zeros(input_shape_of(model, input_shape)))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def replace_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` at dotted ``path`` inside ``model`` (works inside ``nn.Sequential``)."""
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, module)
