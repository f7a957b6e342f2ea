"""The paper's AlexNet-based brain-tumour classifier.

torchvision's AlexNet layout (five convs, three fully connected layers) with a 4-way
head. MRI is grey, so the first conv reads one channel: replicating grey into RGB would
triple the first layer's cost and add nothing. Input: ``1 x 224 x 224`` in ``[0, 1]``.
There are no shipped weights: train it with ``python -m hscc_core train``.
"""
from __future__ import annotations

import torch
from torch import nn

from ._registry import register_model
from ._spec import ModelSpec

__all__ = ["AlexNetMRI", "ALEXNET_SPEC", "alexnet"]

ALEXNET_SPEC = ModelSpec(
    name="alexnet",
    input_size=(224, 224),
    channels=1,
    description="AlexNet-based 4-class brain-tumour classifier (grey 224x224 input, trained here)",
)


class AlexNetMRI(nn.Module):
    """AlexNet with ``in_channels`` input planes and ``num_classes`` outputs (logits)."""

    def __init__(self, num_classes: int = 4, in_channels: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
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


@register_model("alexnet")
def alexnet(pretrained: bool = True) -> AlexNetMRI:
    """The AlexNet classifier, randomly initialised (``pretrained`` is accepted for API
    symmetry; trained weights come from ``train`` checkpoints, loaded by path)."""
    model = AlexNetMRI(num_classes=ALEXNET_SPEC.num_classes, in_channels=ALEXNET_SPEC.channels)
    model.spec = ALEXNET_SPEC
    return model
