"""HSCC-MRI, the product: brain-tumour MRI classifiers compressed with :mod:`hscc_core`.

This layer joins the pure compressor library to the models (:mod:`models`), the scan
reading (:mod:`preprocessing`) and the user: default settings (:mod:`.recipes`), model
resolution (:mod:`.resolve`), calibration sets, the build cache, inference, training,
data splits, evaluation on real test sets, the evidence report and the command line
(:mod:`.cli`, installed as ``hscc-mri``). The web app (:mod:`webapp`) sits on top.

Errors raised on purpose derive from :class:`ProductError` (:mod:`.errors`) or, from the
library, :class:`hscc_core.HSCCError`.
"""
from __future__ import annotations

from .errors import DataError, ProductError, SettingsError
from .recipes import (DEFAULT_BUDGET, DEFAULT_MODEL, DEFAULT_RECIPES, CalibrationRecipe, TrainRecipe,
                      default_recipe)
from .resolve import load_model, resolve_model, save_model, save_model_with_report

__all__ = ["CalibrationRecipe", "DataError", "DEFAULT_BUDGET", "DEFAULT_MODEL", "DEFAULT_RECIPES", "ProductError",
           "SettingsError", "TrainRecipe", "default_recipe", "load_model", "resolve_model", "save_model",
           "save_model_with_report"]
