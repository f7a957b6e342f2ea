"""Export any dense or compressed PyTorch model to ONNX (and OpenVINO IR), checked.

The ONNX graph has a dynamic batch axis (input ``input``, output ``logits``); node names
keep PyTorch's module scopes (``/features/features.28/Conv``), which is how
:func:`layer_groups` maps graph nodes back to the model's layers for quantisation.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from hscc_core import MODULE_TYPES, atomic_write, input_shape_of

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_onnx", "exportable", "layer_groups", "max_probability_gap", "node_group",
           "onnx_bytes", "scope_prefix"]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: ONNX opset of the export (supported by every runtime pinned in requirements.txt).
OPSET = 17


class _MatrixAdaptiveAvgPool(nn.Module):
    """``AdaptiveAvgPool2d`` for one fixed input size as two constant averaging matrices:
    exact, and exportable where the output size does not divide the input size (which
    the ONNX exporter refuses)."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", _averaging_matrix(in_hw[0], out_hw[0]), persistent=False)
        self.register_buffer("cols", _averaging_matrix(in_hw[1], out_hw[1]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols.t())


def _averaging_matrix(size: int, out: int) -> torch.Tensor:
    # Bin i averages [floor(i * size / out), ceil((i + 1) * size / out)), as PyTorch does.
    m = torch.zeros(out, size)
    for i in range(out):
        start, end = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, start:end] = 1.0 / (end - start)
    return m


def exportable(model: nn.Module, shape: Sequence[int]) -> nn.Module:
    """``model``, or a copy whose adaptive average pools that the exporter refuses (output
    size not a factor of the input size at this input ``shape``) are exact matrix pools."""
    import copy

    from hscc_core import replace_submodule

    seen: dict[str, tuple[int, int]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, tuple(inp[0].shape[-2:])))
             for name, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape)))
    finally:
        for h in hooks:
            h.remove()
    todo = {}
    for name, in_hw in seen.items():
        out = model.get_submodule(name).output_size
        out_hw = (out, out) if isinstance(out, int) else tuple(o if o is not None else i for o, i in zip(out, in_hw))
        if any(i % o for i, o in zip(in_hw, out_hw)):
            todo[name] = (in_hw, out_hw)
    if not todo:
        return model
    model = copy.deepcopy(model)
    for name, (in_hw, out_hw) in todo.items():
        replace_submodule(model, name, _MatrixAdaptiveAvgPool(in_hw, out_hw))
    return model


def onnx_bytes(model: nn.Module, input_shape: Sequence[int] | None = None) -> bytes:
    """The ONNX serialisation of ``model`` (eval mode, float32, dynamic batch).

    Args:
        model: any ``nn.Module`` taking one ``(N, C, H, W)`` batch.
        input_shape: ``(C, H, W)``; default: what the model states (``model.spec``).
    """
    shape = input_shape_of(model, input_shape)[1:]
    was_training = model.training
    model.eval()
    dummy = torch.zeros((1, *shape))
    buffer = io.BytesIO()
    try:
        exported = exportable(model, shape)  # a copy where needed: ``model`` is restored below
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(exported, (dummy,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
    finally:
        model.train(was_training)
    return buffer.getvalue()


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: Sequence[int] | None = None) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically); returns the path."""
    path = Path(path)
    data = onnx_bytes(model, input_shape)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return path


def layer_groups(model: nn.Module) -> list[str]:
    """Qualified names of the model's computing layers, in order: every ``Conv2d`` and
    ``Linear`` and every compressed layer (a module type an artifact can hold), not
    descending into the latter. These are the units whose precision quantisation chooses."""
    names: list[str] = []
    skip: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(s + ".") for s in skip):
            continue
        if _is_compressed(module):
            names.append(name)
            skip.append(name)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            names.append(name)
    return names


def never_quantised(model: nn.Module) -> list[str]:
    """Modules whose graph nodes int8 leaves in float32 whatever the plan: adaptive average
    pools, which :func:`exportable` may turn into matrix products (exact averaging: int8
    would only add error to an op that costs next to nothing)."""
    return [name for name, m in model.named_modules() if name and isinstance(m, nn.AdaptiveAvgPool2d)]


def _is_compressed(module: nn.Module) -> bool:
    # Artifacts name their layer modules by class name (hscc_core.MODULE_TYPES).
    return MODULE_TYPES.get(type(module).__name__) is type(module)


def scope_prefix(group: str) -> str:
    """The start of the graph-node names inside module ``group`` (e.g. ``"layer1.0.conv1"``
    -> ``"/layer1/layer1.0/conv1/"``).

    The TorchScript exporter names each module's scope by its qualified name from the
    last non-numeric atom on (``layer1.0`` stays ``layer1.0``, ``layer1.0.conv1`` becomes
    ``conv1``), one scope per enclosing module; OpenVINO keeps these names."""
    atoms = group.split(".")
    segments = []
    for i in range(1, len(atoms) + 1):
        prefix = atoms[:i]
        last = max((j for j, a in enumerate(prefix) if not a.isnumeric()), default=0)
        segments.append(".".join(prefix[last:]))
    return "/" + "/".join(segments) + "/"


def node_group(node_name: str, groups: Iterable[str]) -> str | None:
    """The layer group (see :func:`layer_groups`) a graph node belongs to, by its scope."""
    # Longest prefix first, should a caller pass nested groups.
    for group in sorted(groups, key=len, reverse=True):
        if node_name.startswith(scope_prefix(group)):
            return group
    return None


def max_probability_gap(logits_a: np.ndarray, logits_b: np.ndarray) -> float:
    """Largest absolute difference of the softmax probabilities of two logit arrays."""
    def softmax(z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return float(np.abs(softmax(logits_a) - softmax(logits_b)).max())
