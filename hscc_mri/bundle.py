"""An artifact's family of files, under one naming scheme.

A compressed model is one ``.safetensors`` file and the files that belong to it, all named
by the artifact's *stem* (its name without ``.safetensors``) plus one suffix each::

    <stem>.safetensors                       the model (hscc_core.save)
    <stem>.json                              its compression report (hscc_core.save_with_report)
    <stem>.evaluation.json                   its measurement on a labelled test set
    <stem>.target.json                       the curve of the --target-agreement search that chose it
    <stem>.int8-<runtime>.json               its int8 plan for a runtime (which layers stay float32)
    <stem>.int8-<runtime>[-<tag>].<xml|onnx> its quantised graph (+ .bin for OpenVINO IR);
                                             the cache tags it by the plan and quantiser versions,
                                             a release ships it untagged
    <stem>_layers/                           its per-layer region figures

A registry model (the dense reference), which has no file of its own, gets the same
family under a stem of its name and weights' identity in the cache folder
(:meth:`ArtifactBundle.for_registry_model`), or under its name in a release folder.

:class:`ArtifactBundle` is the one place these names are spelt; the code that writes or
reads any of these files asks it for the path.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import hscc_core

__all__ = ["ARTIFACT_SUFFIX", "EVALUATION_SUFFIX", "TARGET_SUFFIX", "ArtifactBundle"]

#: The suffix of a model file.
ARTIFACT_SUFFIX = ".safetensors"
#: What replaces :data:`ARTIFACT_SUFFIX` in the name of its evaluation sidecar.
EVALUATION_SUFFIX = ".evaluation.json"
#: What replaces :data:`ARTIFACT_SUFFIX` in the name of its target-search curve.
TARGET_SUFFIX = ".target.json"


@dataclass(frozen=True)
class ArtifactBundle:
    """The files of one model, addressed by their common stem.

    Attributes:
        stem: folder and stem (``release/vgg16-brain-mri-hscc-6x``); every member is this
            path with a suffix appended.
    """

    stem: Path

    @classmethod
    def of(cls, artifact: str | os.PathLike[str]) -> ArtifactBundle:
        """The bundle of a model file: ``x.safetensors`` has stem ``x``; a file of another
        name is its own stem (its members get their suffixes appended to its full name)."""
        path = Path(artifact)
        name = path.name[: -len(ARTIFACT_SUFFIX)] if path.name.endswith(ARTIFACT_SUFFIX) else path.name
        return cls(path.with_name(name))

    @classmethod
    def for_registry_model(cls, folder: str | os.PathLike[str], name: str, identity: str) -> ArtifactBundle:
        """The bundle of a registry model kept in a cache ``folder``: stem
        ``<name>-<first 10 hex digits of its identity>``, so other weights get other files."""
        return cls(Path(folder) / f"{name}-{identity[:10]}")

    def _with(self, suffix: str) -> Path:
        return self.stem.with_name(self.stem.name + suffix)

    @property
    def name(self) -> str:
        """The stem's file name (``vgg16-brain-mri-hscc-6x``)."""
        return self.stem.name

    @property
    def artifact(self) -> Path:
        """The model file."""
        return self._with(ARTIFACT_SUFFIX)

    @property
    def report(self) -> Path:
        """The compression report: where :func:`hscc_core.save_with_report` writes it
        beside the model file (``<stem>.json``)."""
        return hscc_core.report_path(self.artifact)

    @property
    def evaluation(self) -> Path:
        """The evaluation sidecar (its measurement on a labelled test set)."""
        return self._with(EVALUATION_SUFFIX)

    @property
    def target_curve(self) -> Path:
        """The curve of the ``--target-agreement`` search that chose the model."""
        return self._with(TARGET_SUFFIX)

    def int8_plan(self, runtime: str) -> Path:
        """The int8 plan for ``runtime``."""
        return self._with(f".int8-{runtime}.json")

    def int8_graph(self, runtime: str, graph_suffix: str, tag: str | None = None) -> Path:
        """The quantised graph for ``runtime`` in its backend's format (``graph_suffix``:
        ``xml`` or ``onnx``); ``tag`` tells kept graphs of different plans apart."""
        return self._with(f".int8-{runtime}{'' if tag is None else '-' + tag}.{graph_suffix}")

    @property
    def layers_dir(self) -> Path:
        """The folder of per-layer region figures."""
        return self._with("_layers")

    def members(self) -> list[Path]:
        """Every file and folder of the family that exists now, sorted by name: the model
        file and all ``<stem>.*`` files (report, evaluation, plans, graphs), then the
        figure folder. A model whose stem extends this one (``<stem>-fm.safetensors``) is
        not a member."""
        found = [Path(p) for p in glob.glob(glob.escape(str(self.stem)) + ".*")]
        if self.layers_dir.is_dir():
            found.append(self.layers_dir)
        return sorted(found, key=lambda p: p.name)
