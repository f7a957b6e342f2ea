"""The two models the app compares: the compressed one and its uncompressed reference.

By default both come from the release (:mod:`hscc_mri.release`: the compressed models,
int8 graphs and measured fidelity committed in ``release/``), each file checked against
the manifest's SHA-256 before it is read: nothing is compressed or quantised at start. A
file that fails its check is named with both hash prefixes and never run; the pair is
then built as below instead.

``--model`` is either a registry name (the compressed model is then built once with
:func:`hscc_mri.cache.compressed_model` and loaded from the cache afterwards) or the
path of an artifact. A compressed artifact *is* the model to show; its reference is the
registry model it was built from (``--reference`` overrides, e.g. a trained checkpoint).
An uncompressed artifact (e.g. a trained AlexNet checkpoint) is the reference and is
compressed through the cache like a registry model.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

from hscc_core import count_flops, count_params, load_metadata
from hscc_mri.cache import cache_path, compressed_model, load_report
from hscc_mri.deploy import Deployable, default_calibration_batches
from hscc_mri.recipes import DEFAULT_BUDGET, DEFAULT_METHOD, DEFAULT_MODEL
from hscc_mri.release import REFERENCE, RELEASE_DIR, Release, ReleaseError, load_release, load_release_models
from hscc_mri.resolve import load_model, resolve_model
from hscc_mri.runtimes import Choice, Request, cpu_summary, decide
from hscc_mri.safety_net import safety_net_for
from hscc_mri.sidecar import load_evaluation

__all__ = ["ModelPair", "load_model_pair", "release_note"]


@dataclass
class ModelPair:
    """The compressed model, its uncompressed reference and what is known about both.

    Attributes:
        original: the uncompressed reference model (eval mode).
        compressed: the compressed model (eval mode).
        report: the compression report (``flops_original``, ``flops_compressed``,
            ``params_original``, ``params_compressed``, ``config``...).
        name: how the page names the compressed model, e.g. ``"HSCC 6x"``.
        reference_name: how the page names the reference, e.g. ``"vgg16-brain-mri"``.
        seconds: wall time of getting the compressed model (build or cached load) and of
            building the reference.
        lock: held while the models are timed, so that concurrent requests do not share
            the CPU cores during a measurement (latencies stay honest).
        evaluation: the ``evaluate --data`` result measured on exactly this compressed
            artifact (its sidecar, see :func:`hscc_mri.sidecar.load_evaluation`), or
            ``None`` when there is none for these bytes.
        runtime: the runtime and precision both models run in (the same for both, so the
            speed-up is a fair one), with why it was chosen.
        release: where the pair came from when it is the release's: ``folder``, ``name``
            and ``reference`` (each model's release name with 12 hex of its SHA-256),
            ``fidelity`` (the manifest's measurement of the compressed model), ``test_set``,
            ``commit`` and ``safety_net`` (the release's rule for the precision the page
            runs, :class:`hscc_mri.safety_net.SafetyNet`, or ``None``); ``None`` for a pair
            built or loaded otherwise.
    """

    original: nn.Module
    compressed: nn.Module
    report: dict[str, Any]
    name: str
    reference_name: str
    seconds: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    runtime: Choice = field(default_factory=lambda: Choice("torch", "fp32"))
    release: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spec(self):
        """The input contract and class names (shared by both models)."""
        return self.compressed.spec


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _method_name(report: dict[str, Any], fallback: str) -> str:
    """How the page names a compressed model: ``"HSCC 6x"``, ``"HSCC 6x, distilled"`` when
    its report records a distillation toward the reference."""
    config = report.get("config") or {}
    method = str(config.get("method", fallback)).upper()
    budget = config.get("budget")
    name = f"{method} {budget:g}x" if isinstance(budget, (int, float)) else method
    return f"{name}, distilled" if report.get("distillation") else name


def _fill_counts(report: dict[str, Any], original: nn.Module, compressed: nn.Module) -> dict[str, Any]:
    """Measure FLOPs/params that a report lacks (e.g. an artifact saved without one)."""

    report = dict(report)
    for key, model, count in (("flops_original", original, count_flops), ("flops_compressed", compressed, count_flops),
                              ("params_original", original, count_params),
                              ("params_compressed", compressed, count_params)):
        if not report.get(key):
            report[key] = int(count(model))
    return report


def load_model_pair(model: str = DEFAULT_MODEL, method: str = DEFAULT_METHOD.value, budget: float = DEFAULT_BUDGET,
                    cache_dir: str | os.PathLike = "artifacts", rebuild: bool = False,
                    reference: str | None = None, progress: bool = True,
                    log: Callable[[str], None] | None = None, runtime: str = "auto",
                    precision: str = "auto", release: str | os.PathLike | None = RELEASE_DIR) -> ModelPair:
    """Get the compressed model and its uncompressed reference: from the release when it
    has them, else built once (then cached).

    Args:
        model: registry name or artifact path (see the module docstring).
        method, budget: which compressed model (ignored for a compressed artifact).
        cache_dir: the build-once cache folder.
        rebuild: compress again even if cached.
        reference: registry name or artifact path of the uncompressed model to compare
            against (default: ``model`` itself, or the base of a compressed artifact).
        progress: progress bars and messages on stderr.
        log: where one-line messages go (default stderr).
        runtime, precision: what both models run in, as the deployment policy decides
            (:func:`hscc_mri.runtimes.decide`; ``auto``: the fastest known for this CPU at
            the product's default precision, falling back when compiling it fails).
            Int8 calibrates both on the default calibration set, each keeping the layers
            its measured int8 plan names in float32 (the dense reference's plan too).
        release: the release folder to load from when ``model``/``method``/``budget`` are
            one of its compressed models (and neither ``rebuild`` nor ``reference`` is
            given); ``None``: never. Its auto choice is int8 only on the CPU kind its plans
            were measured on (:func:`hscc_mri.release.release_choice`).

    Raises:
        hscc_core.ArtifactError: a name/path that is neither a model nor an artifact.
        hscc_mri.runtimes.RuntimeUnavailable: an explicit runtime/precision this machine cannot run.
        ValueError: bad method/budget, or the two models disagree on classes or input.
    """
    log = log or _stderr
    if release is not None and not rebuild and reference is None:
        pair = _release_pair(Path(release), model, method, budget, runtime, precision, log)
        if pair is not None:
            return pair
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    meta = load_metadata(model) if Path(model).is_file() else None
    if meta is not None and meta.get("replacements"):
        compressed, report = load_model(model), load_report(model)
        seconds["compressed_artifact"] = time.perf_counter() - t0
        log(f"loaded compressed artifact {model} in {seconds['compressed_artifact']:.1f} s")
        reference = reference or meta["base"]
        artifact = Path(model)
    else:
        path = cache_path(model, method, budget, cache_dir)
        before = _mtime(path)
        compressed, report = compressed_model(model, method, budget, cache_dir, rebuild=rebuild, progress=progress,
                                              log=log)
        loaded = before is not None and _mtime(path) == before  # else it was (re)built
        seconds["compressed_load" if loaded else "compressed_build"] = time.perf_counter() - t0
        reference = reference or model
        artifact = path
    t1 = time.perf_counter()
    original = resolve_model(reference)
    seconds["reference_load"] = time.perf_counter() - t1
    if tuple(original.spec.class_names) != tuple(compressed.spec.class_names) or \
            tuple(original.spec.input_size) != tuple(compressed.spec.input_size) or \
            original.spec.channels != compressed.spec.channels:
        raise ValueError(f"reference {reference!r} and the compressed model differ in classes or input")
    report = _fill_counts(report, original, compressed)
    reference_file = str(reference) if Path(str(reference)).is_file() else None
    # Both models in the same runtime and precision, so the speed-up compares like with like
    # (auto: int8 only when both have a measured plan for this CPU kind at hand). Each
    # model's weights are hashed once, for the plan look-up, and reused to deploy it.
    targets = [Deployable(compressed, artifact, cache_dir), Deployable(original, reference_file, cache_dir)]
    decision = decide(Request(runtime, precision, targets))
    t2 = time.perf_counter()
    # Int8: each model with its own measured plan; the calibration set is read only if a
    # quantised graph is not kept yet, and then once for both.
    calibration = functools.cache(lambda: default_calibration_batches(original))
    (fast_compressed, fast_original), choice = decision.run(
        lambda c: [t.deploy(c, progress=progress, log=log, calibration=calibration) for t in targets], log)
    seconds["runtime_compile"] = time.perf_counter() - t2
    log(f"both models run in {choice.label} ({choice.reason or 'as asked'}; CPU: {cpu_summary()}), "
        f"compiled in {seconds['runtime_compile']:.1f} s")
    return ModelPair(original=fast_original, compressed=fast_compressed,
                     report=report, name=_method_name(report, method), reference_name=Path(str(reference)).name,
                     seconds=seconds, evaluation=load_evaluation(artifact), runtime=choice)


def _release_pair(folder: Path, model: str, method: str, budget: float, runtime: str, precision: str,
                  log: Callable[[str], None]) -> ModelPair | None:
    """The pair from the release in ``folder`` when it holds ``model`` compressed by
    ``method`` at ``budget``; ``None`` when it does not, or when one of its files fails its
    check (said in the log: which file, expected and found hash prefix)."""
    try:
        rel = load_release(folder)
    except ReleaseError as e:
        if (folder / "manifest.json").exists():
            log(f"{e}; building the models instead")
        return None
    key = rel.key_for(budget, method)
    if key is None or rel.models[REFERENCE]["model"] != model:
        return None
    t0 = time.perf_counter()
    try:
        compressed, original = load_release_models(rel, [key, REFERENCE], runtime, precision, log)
        seconds = {"release_load": compressed.seconds, "reference_load": original.seconds}
    except ReleaseError as e:
        log(f"{e}; building {_file_name(rel, key)} instead")
        return None
    entry, choice = compressed.entry, compressed.choice
    report = _fill_counts(dict(entry["report"]), original.source, compressed.source)
    evaluation = None
    if entry.get("evaluation"):
        try:
            rel.verify(entry["evaluation"])
            evaluation = load_evaluation(compressed.artifact)
        except ReleaseError as e:
            log(f"{e}; the page shows no real-test measurement")
    log(f"loaded {compressed.name} and {original.name} from the release {folder} in "
        f"{time.perf_counter() - t0:.1f} s; both run in {choice.label} ({choice.reason or 'as asked'}; CPU: "
        f"{cpu_summary()})")
    info = {"folder": str(folder), "name": compressed.name, "reference": original.name,
            "fidelity": rel.fidelity(key), "test_set": rel.manifest.get("test_set"),
            "commit": rel.manifest["code"]["commit"], "int8": entry.get("int8"),
            "safety_net": safety_net_for(entry, choice.precision)}
    return ModelPair(original=original.model, compressed=compressed.model, report=report,
                     name=_method_name(report, method), reference_name=rel.models[REFERENCE]["name"],
                     seconds=seconds, evaluation=evaluation, runtime=choice, release=info)


def _file_name(rel: Release, key: str) -> str:
    """How the log names model ``key`` of ``rel`` (its file, or the reference's name)."""
    entry = rel.models[key]
    return entry.get("file") or entry["name"]


def _pct(value: float | None, se: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")


def release_note(pair: ModelPair) -> str:
    """Markdown naming the release model the page runs and its measured fidelity (from the
    manifest), or why it runs in float; empty for a pair that is not the release's."""
    info = pair.release
    if not info:
        return ""
    text = f"\n\nModel: `{info['name']}` from the release (reference `{info['reference']}`)"
    fid, test = info.get("fidelity"), info.get("test_set")
    if fid and test:
        text += (f"; measured on {test['n']} labelled real scans ({test['name']}, SHA-256 {test['sha256'][:12]}): "
                 f"agrees with the uncompressed model on **{_pct(fid['agreement'], fid['agreement_se'])}**, "
                 f"accuracy {_pct(fid['accuracy'], fid['accuracy_se'])} vs "
                 f"{_pct(fid['reference_accuracy'], fid['reference_accuracy_se'])} uncompressed (PyTorch FP32")
        same = (fid.get(f"{pair.runtime.runtime} {pair.runtime.precision}") or {}).get("agreement_same_runtime")
        if same is not None:
            se = fid[f"{pair.runtime.runtime} {pair.runtime.precision}"].get("agreement_same_runtime_se")
            text += f"; both in {pair.runtime.label}: {_pct(same, se)} agreement"
        text += "; ± bootstrap SE)"
    else:
        text += "; not evaluated on a labelled test set"
    if pair.runtime.precision != "int8" and "not int8" in (pair.runtime.reason or ""):
        text += f". Runs in {pair.runtime.label}: {pair.runtime.reason.split('not int8: ', 1)[1]}"
    return text + "."


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
