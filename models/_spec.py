"""What a model expects as input and what its outputs mean.

Preprocessing reads this instead of hard-coding sizes, channels or scaling, so a new
model only has to describe itself here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The four classes of the public brain-tumour MRI data set, in its alphabetical folder order.
BRAIN_TUMOUR_CLASSES: tuple[str, ...] = ("glioma", "meningioma", "notumor", "pituitary")

#: Human-readable names for display (the data set spells "no tumour" as ``notumor``).
DISPLAY_NAMES: dict[str, str] = {
    "glioma": "glioma",
    "meningioma": "meningioma",
    "notumor": "no tumour",
    "pituitary": "pituitary",
}

#: Input scalings a model can declare (``ModelSpec.scaling``).
SCALINGS: tuple[str, ...] = ("unit", "uint8")
#: Resize filters a model can declare (``ModelSpec.resize``).
RESIZES: tuple[str, ...] = ("area", "pil-bicubic", "pil-bilinear", "pil-nearest")


@dataclass(frozen=True)
class ModelSpec:
    """Metadata that travels with a model.

    Attributes:
        name: registry name of the architecture.
        class_names: output index -> class name.
        input_size: ``(height, width)`` in pixels of the model input.
        channels: 1 for grey input, 3 when the grey scan is replicated into RGB.
        scaling: how the model's training images were brought to ``[0, 1]`` before
            ``mean``/``std`` (see :data:`SCALINGS`): ``"unit"`` = a percentile window of
            every slice (what our own training pipeline gives); ``"uint8"`` = 8-bit
            pixels divided by 255 (the Keras VGG16 saw JPEG pixels / 255), other sources
            (DICOM, NIfTI, 16-bit images) going through a display window first.
        resize: how the slice is resized to ``input_size`` (see :data:`RESIZES`):
            ``"area"`` (OpenCV area averaging) or ``"pil-bicubic"``/``"pil-bilinear"``/
            ``"pil-nearest"`` (Pillow's antialiased filters, as Keras/PIL pipelines use).
        mean, std: per-channel normalisation applied after scaling
            (``(x - mean) / std``); ``(0,)``/``(1,)`` means none.
        outputs: ``"logits"`` (the module returns logits; softmax gives probabilities).
        description: one line for ``--help`` and reports.
    """

    name: str
    class_names: tuple[str, ...] = BRAIN_TUMOUR_CLASSES
    input_size: tuple[int, int] = (224, 224)
    channels: int = 1
    scaling: str = "unit"
    resize: str = "area"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    outputs: str = "logits"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            raise ValueError(f"input_size must be (height, width) >= 8, got {self.input_size}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"unknown scaling {self.scaling!r}; defined: {', '.join(SCALINGS)}")
        if self.resize not in RESIZES:
            raise ValueError(f"unknown resize {self.resize!r}; defined: {', '.join(RESIZES)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """Shape ``(N, C, H, W)`` of a model input batch."""
        return (batch, self.channels, *self.input_size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        for key in ("class_names", "input_size", "mean", "std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)
