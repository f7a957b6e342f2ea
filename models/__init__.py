"""Model architectures and weight importers behind one registry.

>>> from models import build_model, list_models
>>> list_models()
['alexnet', 'vgg16-brain-mri']
"""
from __future__ import annotations

from . import alexnet as _alexnet  # noqa: F401  (registers "alexnet")
from . import vgg16_brain as _vgg16_brain  # noqa: F401  (registers "vgg16-brain-mri")
from ._registry import build_model, build_trainable, list_models, register_model
from ._spec import BRAIN_TUMOUR_CLASSES, DISPLAY_NAMES, ModelSpec

__all__ = ["BRAIN_TUMOUR_CLASSES", "DISPLAY_NAMES", "ModelSpec", "build_model", "build_trainable", "list_models", "register_model"]
