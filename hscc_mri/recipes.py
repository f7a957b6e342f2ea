"""The one place where the product's default settings live.

The command line, the app, the build cache and the report all read their defaults from
here, so a change of a default is one edit:

* :class:`TrainRecipe`: everything the ``train`` command does (model, data, epochs,
  batch size, learning rate, split sizes, ...);
* :class:`CalibrationRecipe` and :data:`DEFAULT_RECIPES`: how each model's calibration
  set is drawn (chosen by measurement on a validation split; docs/compressor.md);
* the default model, method, budget and distillation settings of ``compress`` and the app.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hscc_core import CompressionConfig, FinetuneConfig, Method

from .errors import SettingsError

__all__ = ["CalibrationRecipe", "DEFAULT_BUDGET", "DEFAULT_METHOD", "DEFAULT_MODEL", "DEFAULT_RECIPES",
           "LEGACY_RECIPE", "REAL_CALIBRATION_DIR", "SAMPLES_DIR", "TRAIN_AUGMENTATIONS", "TRAIN_PRECISIONS",
           "TrainRecipe", "compression_config", "default_recipe", "finetune_config", "DEFAULT_EPOCHS"]

_ROOT = Path(__file__).resolve().parents[1]
#: The six real sample JPEGs shipped with the repository.
SAMPLES_DIR = _ROOT / "samples"
#: The real training scans shipped as the default calibration set (see its README).
REAL_CALIBRATION_DIR = _ROOT / "data" / "calibration" / "brain-mri"

#: The model ``predict``, ``compress``, ``evaluate`` and the app use unless told otherwise.
DEFAULT_MODEL = "vgg16-brain-mri"
DEFAULT_METHOD = Method.HSCC
#: The app's and ``compress``'s FLOPs reduction factor.
DEFAULT_BUDGET = 6.0


@dataclass(frozen=True)
class CalibrationRecipe:
    """How a calibration set is drawn: the one description the CLI, the app's cache and the
    report share (its :meth:`to_dict` is part of the cache key).

    Attributes:
        source: ``"real"`` (the real training scans shipped in :data:`REAL_CALIBRATION_DIR`),
            ``"samples"`` (the six JPEGs in ``samples/``), ``"phantoms"`` (synthetic only)
            or the path of any folder of scans (searched recursively; class folders are
            recognised and balanced).
        scans: at most this many scans, balanced over classes (``None``: all).
        views: versions of each scan: 1 = the scan itself, ``v`` > 1 adds ``v - 1``
            strongly augmented views (:func:`hscc_mri.calibration.calibration_augmentation`).
        phantoms: synthetic phantoms added (balanced over the four classes).
        seed: seed of the draw, the augmentations and the phantoms.
    """

    source: str = "real"
    scans: int | None = None
    views: int = 1
    phantoms: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scans is not None and self.scans < 1:
            raise SettingsError(f"scans must be >= 1, got {self.scans}")
        if self.views < 0 or self.phantoms < 0:
            raise SettingsError("views and phantoms must be >= 0")
        if self.source == "phantoms" and self.phantoms < 1:
            raise SettingsError("a phantom-only calibration set needs phantoms >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The default calibration recipe of each registry model; :data:`LEGACY_RECIPE` for others.
#: The pretrained VGG16 is calibrated on real training scans (size and the value of views
#: and phantoms measured on a validation split: scripts/calibration_curve.py, docs/evaluation-and-data.md).
DEFAULT_RECIPES: dict[str, CalibrationRecipe] = {
    "vgg16-brain-mri": CalibrationRecipe(source="real", scans=256, views=1, phantoms=0),
}
#: The sample scans in 16 augmented views plus 32 phantoms: the default for models
#: trained here on phantoms (e.g. ``alexnet``), whose inputs the real set does not match.
LEGACY_RECIPE = CalibrationRecipe(source="samples", scans=None, views=16, phantoms=32)


def default_recipe(model_name: str) -> CalibrationRecipe:
    """The default :class:`CalibrationRecipe` of the registry model ``model_name``."""
    return DEFAULT_RECIPES.get(model_name, LEGACY_RECIPE)


def compression_config(method: str | Method = DEFAULT_METHOD, budget: float | None = DEFAULT_BUDGET,
                       seed: int = 0, **overrides: Any) -> CompressionConfig:
    """The product's compression of ``method`` at ``budget`` (``None`` with ``energy=``):
    the library's defaults, which the cache, ``compress`` and ``evaluate`` build unless
    told otherwise."""
    return CompressionConfig(method=method, budget=None if budget is None else float(budget), seed=seed,
                             **overrides)


def finetune_config(epochs: int = 0, lr: float = 1e-4, seed: int = 0) -> FinetuneConfig:
    """Distillation against the original as ``compress --finetune-epochs`` runs it."""
    return FinetuneConfig(epochs=epochs, lr=lr, seed=seed)


#: Training arithmetic (not inference's, :data:`hscc_mri.runtimes.PRECISIONS`): ``auto`` is
#: bfloat16 autocast where the CPU has native bfloat16 (AVX512-BF16 / AMX; measured 0.60 ->
#: 0.43 s per AlexNet batch of 64 on 2 cores), else float32. Weights, optimizer state,
#: BatchNorm and the loss stay float32 either way.
TRAIN_PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")

#: Training epochs by data. Phantoms: 14 (the phantom report's checkpoint). A folder of real
#: scans: 9, so that the 5,137 training scans of the public data set train in under 20 min
#: on 2 AVX2 cores (about 115 s an epoch); on the validation split the accuracy is still
#: rising in the last epochs of the one-cycle schedule (docs/training.md, "The AlexNet on real scans").
DEFAULT_EPOCHS: dict[str, int] = {"phantoms": 14, "folder": 9}

#: Training augmentations (:attr:`TrainRecipe.augment`).
TRAIN_AUGMENTATIONS: tuple[str, ...] = ("auto", "shift", "affine", "scan", "none")


@dataclass(frozen=True)
class TrainRecipe:
    """One ``train`` run: what the command line parses into and what the report rebuilds.

    Attributes:
        model: registry model name (a trainable one, e.g. ``alexnet``).
        data: ``"phantoms"`` or a data-set folder (``Training/<class>/``, ``Testing/<class>/``).
        out: the checkpoint (``.safetensors``); its report goes beside it as ``.json``.
        epochs, batch_size, lr: the one-cycle AdamW schedule; ``epochs=None`` takes
            :data:`DEFAULT_EPOCHS` for the data (phantoms, or a folder of real scans).
        seed: splits, initialisation and data order.
        n_train, n_val, n_test: phantom split sizes.
        val_fraction: validation share of a folder's ``Training`` split (stratified).
        num_workers: data-loader processes (``None``: 0 for phantoms, 2 for folders).
        device: ``cpu`` or ``cuda``.
        precision: one of :data:`TRAIN_PRECISIONS`.
        threads: torch CPU threads (``None``: all cores).
        augment: one of :data:`TRAIN_AUGMENTATIONS`: ``"auto"`` is ``"shift"`` for
            phantoms and ``"affine"`` for a folder; ``"shift"``/``"affine"``/``"none"`` read
            a folder's scans once into memory and augment batches
            (:mod:`hscc_mri.batch_augment`); ``"scan"`` augments every scan as it is read, in
            data-loader workers (slower on few cores), plus ``"shift"``.
    """

    model: str = "alexnet"
    data: str = "phantoms"
    out: str = "checkpoints/alexnet-phantoms.safetensors"
    epochs: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    n_train: int = 8000
    n_val: int = 800
    n_test: int = 2000
    val_fraction: float = 0.1
    num_workers: int | None = None
    device: str = "cpu"
    precision: str = "auto"
    threads: int | None = None
    augment: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs is None:  # frozen: resolved once, so every reader sees a number
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS["phantoms" if self.data == "phantoms" else "folder"])
        if self.augment not in TRAIN_AUGMENTATIONS:
            raise SettingsError(f"augment must be one of {TRAIN_AUGMENTATIONS}, got {self.augment!r}")
        if self.precision not in TRAIN_PRECISIONS:
            raise SettingsError(f"precision must be one of {TRAIN_PRECISIONS}, got {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise SettingsError(f"epochs, batch_size and lr must be positive, got {self.epochs}, "
                                f"{self.batch_size}, {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def batch_augmentation(self) -> str:
        """The batch augmentation of training (a name in :data:`hscc_mri.batch_augment.BATCH_AUGMENTATIONS`)."""
        if self.augment == "auto":
            return "shift" if self.data == "phantoms" else "affine"
        return "shift" if self.augment == "scan" else self.augment

    @property
    def in_memory(self) -> bool:
        """Whether a folder's scans are read once into memory (every augmentation but ``"scan"``)."""
        return self.augment != "scan"

    @property
    def workers(self) -> int:
        """Data-loader processes: as given, else 0 for phantoms (drawn in memory) and 2 for folders."""
        return self.num_workers if self.num_workers is not None else (0 if self.data == "phantoms" else 2)
