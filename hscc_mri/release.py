"""The release: the app's models as files in the repository, each checked before use.

This module is the serving half: it reads a release and loads its models (the app and
``hscc-mri predict``). ``hscc-mri release`` builds one (:mod:`hscc_mri.release_build`,
the lab half: it builds or takes as given the default compressed models, quantises each
model that has a measured int8 plan, the dense reference too, evaluates them on a labelled
folder) and writes one folder (:data:`RELEASE_DIR`) with a ``manifest.json``::

    release/
      manifest.json                                  what, how, measured where (below)
      vgg16-brain-mri-hscc-6x.safetensors            the compressed models
      vgg16-brain-mri-hscc-6x.evaluation.json        their real-test measurement (sidecar)
      vgg16-brain-mri-hscc-6x.int8-openvino.{json,xml,bin}   int8 plan + quantised graph
      vgg16-brain-mri.int8-openvino.{json,xml,bin}           the dense reference's

The manifest names every file with its SHA-256 and size, the command, code commit, CPU
kind, build time and peak memory, the calibration data, and per model its build key,
weights identity, int8 plan (and the CPU kind it was measured on) and measured fidelity
on the named test set. The dense reference's float weights are not shipped: they come
from the pinned pip package (the manifest records their identity and checks it).

Loading (:func:`load_release`, :func:`load_released`) checks each file's SHA-256 against
the manifest before it is read; a file that fails raises :class:`ReleaseError` naming the
file and both hash prefixes, and is never run. Int8 is served only on the CPU kind its
plan was measured on (:func:`release_choice`); elsewhere the best float runtime, at once,
with the reason.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from hscc_core import ArtifactError

from .errors import ProductError
from .identity import file_sha256, module_identity
from .recipes import DEFAULT_METHOD
from .resolve import load_model, resolve_model
from .runtimes import Choice, CpuKind, KnownPlans, Request, Runtime, RuntimeUnavailable, backend, compile_model, decide

__all__ = ["FORMAT_VERSION", "INT8_RUNTIME", "MANIFEST", "RELEASE_DIR", "REFERENCE", "Release", "ReleaseError",
           "ReleasedModel", "compressed_key", "load_release", "load_release_models", "load_released", "release_choice",
           "verify_release"]

ROOT = Path(__file__).resolve().parents[1]
#: The release folder in the repository (committed; the app and ``predict`` load it).
RELEASE_DIR = ROOT / "release"
#: The manifest's file name inside a release folder.
MANIFEST = "manifest.json"
#: Version of the manifest's layout.
FORMAT_VERSION = 1
#: The runtime whose int8 graphs a release ships (the fastest measured on CPUs).
INT8_RUNTIME = Runtime.OPENVINO
#: The manifest key of the uncompressed reference model.
REFERENCE = "reference"


class ReleaseError(ArtifactError, ProductError):
    """A release folder or one of its files cannot be used (missing, unreadable, or its
    bytes are not those the manifest names)."""


def compressed_key(method: str, budget: float) -> str:
    """The manifest key of a compressed model, e.g. ``"hscc-6x"``."""
    return f"{method}-{budget:g}x"


# ----------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Release:
    """A release folder and its manifest (see the module docstring)."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def models(self) -> dict[str, dict[str, Any]]:
        """Manifest key (``"reference"``, ``"hscc-6x"``...) -> its entry."""
        return self.manifest["models"]

    def key_for(self, budget: float | None = None, method: str = DEFAULT_METHOD.value) -> str | None:
        """The key of the compressed model at ``budget`` (``None``: the release's default),
        or ``None`` if the release has none."""
        if budget is None:
            return self.manifest["default"]
        key = compressed_key(method, budget)
        return key if key in self.models else None

    def budgets(self) -> list[float]:
        """The FLOPs budgets of the compressed models, ascending."""
        return sorted(m["budget"] for m in self.models.values() if m.get("budget") is not None)

    def name(self, key: str) -> str:
        """How a model of the release is named: its file stem (or registry name) and the
        first 12 hex digits of its weights file's SHA-256 (the weights identity for the
        reference, whose float weights come from the pip package)."""
        entry = self.models[key]
        return f"{entry['name']}@{entry['sha256'][:12]}"

    def verify(self, file: str) -> Path:
        """The path of release file ``file`` after checking its SHA-256 against the manifest.

        Raises:
            ReleaseError: the file is not in the manifest, is missing, or its bytes differ.
        """
        expected = self.manifest["files"].get(file)
        if expected is None:
            raise ReleaseError(f"release file {file} is not listed in {self.folder / MANIFEST}")
        path = self.folder / file
        if not path.is_file():
            raise ReleaseError(f"release file {path} is missing")
        found = file_sha256(path)
        if found != expected["sha256"]:
            raise ReleaseError(f"release file {path} is corrupt or was changed: SHA-256 {found[:12]}… found, "
                               f"{expected['sha256'][:12]}… expected by {MANIFEST}; it is not used")
        return path

    def ships(self, file: str) -> bool:
        """Whether ``file`` (a name in the release folder) is one the manifest checks, so
        that writing it would make the release refuse it."""
        return file in self.manifest["files"]

    def fidelity(self, key: str) -> dict[str, Any] | None:
        """The measured fidelity summary of model ``key`` (``None`` when not evaluated)."""
        return self.models[key].get("fidelity")


def load_release(folder: str | os.PathLike = RELEASE_DIR) -> Release:
    """The release in ``folder`` (its manifest read; files are checked when used).

    Raises:
        ReleaseError: no manifest, or one that cannot be read.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReleaseError(f"no release at {folder} ({MANIFEST} missing)") from None
    except (OSError, ValueError) as e:
        raise ReleaseError(f"{path} cannot be read: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise ReleaseError(f"{path} is not a release manifest of format {FORMAT_VERSION}")
    return Release(folder, manifest)


def verify_release(release: Release) -> list[str]:
    """Check every file the manifest lists (size and SHA-256); returns the problems found
    (one line each; empty when the folder is exactly what the manifest says)."""
    problems = []
    for file, expected in release.manifest["files"].items():
        path = release.folder / file
        if not path.is_file():
            problems.append(f"{file}: missing")
        elif path.stat().st_size != expected["size"]:
            problems.append(f"{file}: {path.stat().st_size} bytes, {expected['size']} expected")
        else:
            try:
                release.verify(file)
            except ReleaseError as e:
                problems.append(str(e))
    return problems


def release_choice(release: Release, keys: Sequence[str], runtime: str = "auto", precision: str = "auto") -> Choice:
    """The runtime and precision to run the release's models ``keys`` in (all in one), as
    the deployment policy decides it (:func:`hscc_mri.runtimes.decide`) from the
    manifest's int8 facts.

    ``auto``: int8 in :data:`INT8_RUNTIME` when every model ships an int8 graph whose plan
    was measured on this CPU kind (VNNI or not: the int8 kernels and the overflow fix
    differ); else the best float choice, at once and with the reason; nothing is measured
    at start. An explicit precision is taken as asked (int8 then runs the shipped graphs
    whatever CPU kind their plan was measured on).

    Raises:
        RuntimeUnavailable, SettingsError: as :func:`hscc_mri.runtimes.decide`.
    """
    return decide(_release_request(release, keys, runtime, precision)).choice


def load_release_models(release: Release, keys: Sequence[str], runtime: str = "auto", precision: str = "auto",
                        log: Callable[[str], None] | None = None) -> list[ReleasedModel]:
    """The release's models ``keys``, checked and compiled, all in one runtime and
    precision: the policy's decision (:func:`release_choice`), and when compiling fails
    here, the next choice of the decision's fallback chain (said in ``log``). A file that
    fails its check is never a reason to fall back.

    Raises:
        ReleaseError: a file fails its check, or the reference's installed weights are not
            the release's.
        RuntimeUnavailable, SettingsError: as :func:`hscc_mri.runtimes.decide`.
    """
    decision = decide(_release_request(release, keys, runtime, precision))
    models, _choice = decision.run(lambda choice: [load_released(release, key, choice) for key in keys], log,
                                   fatal=(ReleaseError,))
    return models


def _release_request(release: Release, keys: Sequence[str], runtime: str = "auto",
                     precision: str = "auto") -> Request:
    """The policy's request for the release's models ``keys``: each named by its key, with
    the CPU kind its shipped int8 graph's plan was measured on (none: no int8 graph)."""
    models = []
    for key in keys:
        int8 = release.models[key].get("int8")
        plans = {INT8_RUNTIME: CpuKind(bool(int8["measured_on"]["vnni"]))} if int8 else {}
        models.append(KnownPlans(key, plans))
    return Request(runtime, precision, models, shipped=INT8_RUNTIME)


@dataclass
class ReleasedModel:
    """One model of a release, checked and compiled.

    Attributes:
        key: its manifest key (``"hscc-6x"``, ``"reference"``).
        name: :meth:`Release.name` (file stem or registry name + 12 hex of its SHA-256).
        model: the compiled model to run (``choice``'s runtime and precision).
        source: the PyTorch model (float32).
        choice: the runtime and precision ``model`` runs in.
        entry: its manifest entry.
        artifact: the checked weights file (``None`` for the reference).
        seconds: how long checking, loading and compiling it took.
    """

    key: str
    name: str
    model: nn.Module
    source: nn.Module
    choice: Choice
    entry: dict[str, Any]
    artifact: Path | None
    seconds: float = 0.0


def load_released(release: Release, key: str, choice: Choice) -> ReleasedModel:
    """Model ``key`` of ``release`` compiled for ``choice``; every file it reads is checked
    against the manifest first (int8: the shipped quantised graph, nothing is quantised).

    Raises:
        ReleaseError: a file fails its check, or the reference's installed weights are not
            the release's.
        RuntimeUnavailable: ``choice`` cannot run here.
    """
    t0 = time.perf_counter()
    entry = release.models[key]
    if entry["kind"] == "reference":
        artifact = None
        source = resolve_model(entry["model"])
        found = module_identity(source)
        if found != entry["sha256"]:
            raise ReleaseError(f"the installed weights of {entry['model']} are not the release's (identity "
                               f"{found[:12]}… found, {entry['sha256'][:12]}… expected): reinstall the pinned "
                               f"requirements")
    else:
        artifact = release.verify(entry["file"])
        source = load_model(artifact)
    if choice.precision == "int8":
        int8 = entry.get("int8")
        if not int8 or choice.runtime != INT8_RUNTIME:
            raise RuntimeUnavailable(f"{key}: the release has no {choice.label} graph")
        xml = release.verify(int8["graph"])
        release.verify(int8["weights"])
        compiled = compile_model(source, choice.runtime, "int8", keep_fp32=int8["keep_fp32"],
                                 int8_options=dict(int8["options"]),
                                 quantized=backend(INT8_RUNTIME).read_graph(xml))
        compiled.details["plan"] = {k: int8.get(k) for k in ("keep_fp32", "options", "agreement", "measured_on")}
        compiled.details["quantized_graph"] = {"file": int8["graph"], "reused": True}
    else:
        compiled = compile_model(source, choice.runtime, choice.precision)
    return ReleasedModel(key, release.name(key), compiled, source, choice, entry, artifact,
                         time.perf_counter() - t0)
