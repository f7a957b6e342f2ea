"""The paper's AlexNet-based brain-tumour classifier.

torchvision's AlexNet layout (five convs, three fully connected layers) with a 4-way
head. MRI is grey, so the first conv reads one channel: replicating grey into RGB would
triple the first layer's cost and add nothing. Input: ``1 x 128 x 128`` in ``[0, 1]``
(128 rather than 224 pixels: on a 2-core CPU it trains 2.2x faster, and the phantom
lesion cues survive the resolution). There are no shipped weights: train it with
``hscc-mri train``.

Training uses a BatchNorm variant (:func:`trainable_alexnet`), which converges far
faster from scratch; :func:`fold_batchnorm` folds each BatchNorm into the conv before it,
so the saved model has exactly the plain AlexNet layout above.
"""
from __future__ import annotations

import torch
from torch import nn

from ._registry import register_model, register_training_variant
from ._spec import ModelSpec

__all__ = ["AlexNetMRI", "ALEXNET_SPEC", "alexnet"]

ALEXNET_SPEC = ModelSpec(
    name="alexnet",
    input_size=(128, 128),
    channels=1,
    description="AlexNet-based 4-class brain-tumour classifier (grey 128x128 input, trained here)",
)


# (in_channels (0 = model input), out_channels, kernel, stride, padding, max-pool after)
_CONVS = [(0, 64, 11, 4, 2, True), (64, 192, 5, 1, 2, True), (192, 384, 3, 1, 1, False),
          (384, 256, 3, 1, 1, False), (256, 256, 3, 1, 1, True)]


class AlexNetMRI(nn.Module):
    """AlexNet with ``in_channels`` input planes and ``num_classes`` outputs (logits)."""

    def __init__(self, num_classes: int = 4, in_channels: int = 1, dropout: float = 0.5,
                 batch_norm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout, k, s, p, pool in _CONVS:
            layers.append(nn.Conv2d(in_channels if cin == 0 else cin, cout, kernel_size=k, stride=s, padding=p))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            if pool:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def trainable_alexnet(dropout: float = 0.0) -> AlexNetMRI:
    """The BatchNorm training variant of :func:`alexnet` (fold it with :func:`fold_batchnorm`).

    No dropout by default: with BatchNorm, label smoothing, weight decay and a fresh
    augmentation every epoch it only slowed convergence on phantoms (short CPU budgets).
    """
    model = AlexNetMRI(num_classes=ALEXNET_SPEC.num_classes, in_channels=ALEXNET_SPEC.channels,
                       dropout=dropout, batch_norm=True)
    model.spec = ALEXNET_SPEC
    return model


@torch.no_grad()
def fold_batchnorm(model: AlexNetMRI) -> AlexNetMRI:
    """A plain :class:`AlexNetMRI` computing what ``model`` computes in eval mode:
    ``BN(conv(x)) = conv'(x)`` with ``W' = W γ/σ`` and ``b' = (b - μ) γ/σ + β``."""
    plain = alexnet()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)] or [None] * len(convs)
    targets = [m for m in plain.features if isinstance(m, nn.Conv2d)]
    for conv, bn, out in zip(convs, norms, targets, strict=True):
        w, b = conv.weight.detach().double(), conv.bias.detach().double()
        if bn is not None:
            scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w, b = w * scale[:, None, None, None], (b - bn.running_mean.double()) * scale + bn.bias.double()
        out.weight.copy_(w.float())
        out.bias.copy_(b.float())
    plain.classifier.load_state_dict(model.classifier.state_dict())
    return plain.eval()


@register_model("alexnet")
def alexnet(pretrained: bool = True) -> AlexNetMRI:
    """The AlexNet classifier, randomly initialised (``pretrained`` is accepted for API
    symmetry; trained weights come from ``train`` checkpoints, loaded by path)."""
    model = AlexNetMRI(num_classes=ALEXNET_SPEC.num_classes, in_channels=ALEXNET_SPEC.channels)
    model.spec = ALEXNET_SPEC
    return model


register_training_variant("alexnet", trainable_alexnet, fold_batchnorm)
