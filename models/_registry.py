"""Model registry: builder functions registered by name (torchvision/timm style)."""
from __future__ import annotations

import fnmatch
from typing import Callable

from torch import nn

ModelBuilder = Callable[..., nn.Module]
_BUILDERS: dict[str, ModelBuilder] = {}
#: name -> (builder of the training variant, function turning it into the registry layout)
_TRAINABLE: dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module], nn.Module]]] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator that registers ``builder(pretrained: bool = True) -> nn.Module`` under ``name``."""

    def wrap(builder: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS:
            raise ValueError(f"a model named {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names, sorted, optionally filtered by a shell-style wildcard."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def build_model(name: str, pretrained: bool = True) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.
        pretrained: load the model's trained weights where it has them (``vgg16-brain-mri``);
            models without shipped weights (``alexnet``) are always randomly initialised.

    Returns:
        The model in eval mode, with its :class:`ModelSpec` as ``model.spec``.
    """
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None
    model = builder(pretrained=pretrained)
    return model.eval()


def register_training_variant(name: str, builder: Callable[[], nn.Module],
                              export: Callable[[nn.Module], nn.Module]) -> None:
    """Train ``name`` as ``builder()`` (e.g. with BatchNorm) and deploy ``export(model)``."""
    _TRAINABLE[name] = (builder, export)


def build_trainable(name: str) -> tuple[nn.Module, Callable[[nn.Module], nn.Module]]:
    """The model to train for ``name`` and the function that turns it into the deployable
    registry layout (identity unless a training variant is registered)."""
    if name in _TRAINABLE:
        builder, export = _TRAINABLE[name]
        return builder(), export
    return build_model(name, pretrained=False), (lambda m: m)
