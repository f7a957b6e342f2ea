"""Evaluation on a labelled real test set: accuracy, fidelity and cost, with paired SEs.

:func:`load_test_set` reads a class-folder test set (``Testing/<class>/<scan files>``)
through the model's own input contract, exactly as ``predict`` does;
:func:`evaluate_models` runs the uncompressed reference and any number of compressed
candidates over it and returns one JSON-ready dict (one row per model, reference
first); :func:`format_table` prints it. Every classification number carries a bootstrap
standard error, and the resamples are *paired*: every model is judged on the same
resampled scans in each replicate, so differences between rows are comparable.

A compressed model saved as an artifact gets a sidecar ``<artifact>.evaluation.json``
(written by ``hscc-mri evaluate --data``, :func:`write_evaluation`); the app reads it back
through :mod:`hscc_mri.sidecar` (:func:`~hscc_mri.sidecar.load_evaluation`, re-exported
here), which returns it only while its recorded SHA-256 matches the artifact's bytes.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from hscc_core import (atomic_write, bootstrap_indices, classification_report, count_flops, count_params, fidelity,
                       file_sha256, optimize_for_inference, paired_difference, replicate_se, time_forward_interleaved)
from hscc_core.progress import progress_bar

from .errors import DataError, SettingsError
from .identity import files_identity
from .inference import input_batches, probabilities
from .runtimes.base import source_model
from .sidecar import EVALUATION_SUFFIX, evaluation_path, load_evaluation

if TYPE_CHECKING:
    from models import ModelSpec

__all__ = [
    "CONFIDENT",
    "EVALUATION_SUFFIX",
    "TestSet",
    "add_same_runtime_agreement",
    "bootstrap_indices",
    "evaluate_models",
    "evaluation_path",
    "format_table",
    "load_evaluation",
    "load_test_set",
    "write_evaluation",
]

#: Reference top probability from which a scan counts as "confident" for the
#: agreement-where-confident column.
CONFIDENT = 0.9
#: Version of the result layout (``result["format_version"]``).
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- test set
@dataclass
class TestSet:
    """A labelled test set in one model's input layout.

    Attributes:
        inputs: ``(N, C, H, W)`` float16 model inputs (half the memory of float32; cast
            back to float32 batch by batch for inference).
        labels: ``(N,)`` int64 true labels (indices into ``class_names``).
        files: relative name of each scan (``"<class folder>/<file>"``, POSIX separators).
        class_names: label index -> class name (the model's ``spec.class_names``).
        skipped: ``{"file", "reason"}`` for every file that could not be read.
        folder: base name of the folder given to :func:`load_test_set`.
        dataset: base name of the data-set root (the split folder's parent).
        split: base name of the split folder (e.g. ``"Testing"``).
        sha256: SHA-256 over the sorted ``(relative path, file bytes)`` of every scan file
            found, skipped ones included (see :func:`load_test_set`).
        spec: the input contract the tensors were made for.
    """

    __test__ = False  # not a pytest test class, despite the name

    inputs: torch.Tensor
    labels: torch.Tensor
    files: list[str]
    class_names: tuple[str, ...]
    skipped: list[dict[str, str]] = field(default_factory=list)
    folder: str = ""
    dataset: str = ""
    split: str = ""
    sha256: str = ""
    spec: "ModelSpec | None" = None

    def __len__(self) -> int:
        return len(self.files)

    def class_counts(self) -> dict[str, int]:
        """Readable scans per class name."""
        counts = np.bincount(self.labels.numpy(), minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts)}

    def summary(self) -> dict[str, Any]:
        """The JSON ``test_set`` block: base names only, never absolute paths."""
        return {
            "folder": self.folder, "dataset": self.dataset, "split": self.split, "n": len(self),
            "class_counts": self.class_counts(), "n_skipped": len(self.skipped), "skipped": list(self.skipped),
            "sha256": self.sha256, "input_shape": list(self.inputs.shape[1:]),
            "class_names": list(self.class_names), "files": list(self.files),
            "labels": self.labels.tolist(),
        }


def _split_dir(folder: Path) -> Path:
    """The split folder of ``folder``: itself when it holds class folders, else its
    ``Testing``/``Test``/``test`` sub-folder."""
    from preprocessing.datasets import canonical_class_name, find_split_dir

    if not folder.is_dir():
        raise FileNotFoundError(f"test-set folder {str(folder)!r} does not exist or is not a folder")
    subdirs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if any(canonical_class_name(name) is not None for name in subdirs):
        return folder
    try:
        return find_split_dir(folder, "Testing")
    except FileNotFoundError:
        raise DataError(
            f"no class folders in {folder.name!r}: expected one folder per class (glioma, meningioma, "
            f"notumor, pituitary, or spellings such as glioma_tumor, no_tumor) or a Testing/ folder holding "
            f"them; folders found: {', '.join(subdirs) or 'none'}") from None


def _relative_reason(reason: str, split_dir: Path) -> str:
    # Loader messages name the file by its base name already; strip any parent path anyway.
    for prefix in (str(split_dir.resolve()), str(split_dir)):
        reason = reason.replace(prefix + os.sep, "").replace(prefix, "")
    return reason


def load_test_set(folder: str | os.PathLike[str], spec: "ModelSpec", progress: bool = True) -> TestSet:
    """Read a labelled class-folder test set into memory, through ``spec``'s input contract.

    Args:
        folder: a split folder holding class folders (``.../brain-mri/Testing``), or a
            data-set root holding ``Testing/`` (or ``Test/``, ``test/``). Class folders
            may use the common spellings (``glioma_tumor``, ``no_tumor``, ``Pituitary``
            ...; see :func:`preprocessing.datasets.canonical_class_name`).
        spec: the model's input contract; every scan goes through
            :func:`preprocessing.load_scan` and
            :func:`preprocessing.scan_to_model_input`, exactly as ``predict`` does.
        progress: a tqdm bar while reading.

    Returns:
        The :class:`TestSet` (inputs kept as float16). Files that cannot be read are
        skipped and listed in ``skipped`` by relative name with the reason.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        DataError: no class folders, two ambiguous splits, or no readable scan at all.
        ValueError: (:class:`preprocessing.datasets.BrainMRIFolder`) a class folder that is
            not a known spelling of one of ``spec.class_names``, or no scan files.
    """
    from preprocessing import ScanError, load_scan, scan_to_model_input
    from preprocessing.datasets import BrainMRIFolder

    given = Path(os.fspath(folder))
    split_dir = _split_dir(given).resolve()
    data = BrainMRIFolder(split_dir.parent, split_dir.name, spec)
    if data.split_dir.resolve() != split_dir:  # e.g. "test" given where "Testing" is its sibling
        raise DataError(f"{split_dir.name!r} is ambiguous beside {data.split_dir.name!r}; "
                        "give the data-set root or rename one of them")
    named = sorted((p.relative_to(split_dir).as_posix(), p) for p, _ in data.samples)
    digest = files_identity([p for _, p in named], names=[rel for rel, _ in named])
    tensors: list[torch.Tensor] = []
    labels: list[int] = []
    files: list[str] = []
    skipped: list[dict[str, str]] = []
    for path, label in progress_bar(data.samples, desc=f"reading {split_dir.name}", unit="scan", disable=not progress):
        rel = path.relative_to(split_dir).as_posix()
        try:
            x = scan_to_model_input(load_scan(path), spec)
        except (ScanError, OSError, ValueError) as e:
            skipped.append({"file": rel, "reason": _relative_reason(str(e), split_dir)})
            continue
        tensors.append(x.to(torch.float16))
        labels.append(label)
        files.append(rel)
    if not tensors:
        raise DataError(f"none of the {len(data.samples)} scan files in {split_dir.name!r} could be read "
                        f"(first: {skipped[0]['file']}: {skipped[0]['reason']})")
    return TestSet(inputs=torch.stack(tensors), labels=torch.tensor(labels, dtype=torch.int64), files=files,
                   class_names=tuple(data.class_names), skipped=skipped, folder=given.resolve().name,
                   dataset=split_dir.parent.name, split=split_dir.name, sha256=digest, spec=spec)


# ----------------------------------------------------------------------------- evaluation
def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _se(values: np.ndarray) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    return _finite(replicate_se(v[np.isfinite(v)]))


def _probabilities(model: nn.Module, inputs: torch.Tensor, batch_size: int, desc: str,
                   progress: bool) -> np.ndarray:
    bar = progress_bar(total=len(inputs), desc=desc, unit="scan", disable=not progress)

    def batches():
        for x in input_batches(inputs, batch_size):
            yield x
            bar.update(len(x))

    with torch.inference_mode():
        probs = probabilities(model, batches()).astype(np.float64)
    bar.close()
    return probs


def _input_contract(spec: "ModelSpec") -> tuple[Any, ...]:
    return (tuple(spec.input_size), spec.channels, spec.scaling, spec.resize, tuple(spec.mean), tuple(spec.std),
            tuple(spec.class_names))


def _row(name: str, probs: np.ndarray, ref_probs: np.ndarray, test_set: TestSet, idx: np.ndarray,
         n_bootstrap: int, seed: int) -> dict[str, Any]:
    y = test_set.labels.numpy()
    names = list(test_set.class_names)
    pred = probs.argmax(1)
    rep = classification_report(y, pred, names, n_bootstrap=n_bootstrap, seed=seed)
    fid = fidelity(ref_probs, probs)
    confident = ref_probs.max(1) >= CONFIDENT
    agree_conf = fidelity(ref_probs[confident], probs[confident])["agreement"] if confident.any() else None
    boot_agree, boot_kl, boot_share, boot_conf = [], [], [], []
    for b in idx:
        f = fidelity(ref_probs[b], probs[b])
        boot_agree.append(f["agreement"])
        boot_kl.append(f["mean_kl"])
        conf_b = b[confident[b]]
        boot_share.append(len(conf_b) / len(b))
        boot_conf.append(fidelity(ref_probs[conf_b], probs[conf_b])["agreement"] if len(conf_b) else np.nan)
    return {
        "name": name,
        "accuracy": rep.accuracy, "accuracy_se": _finite(rep.accuracy_se),
        "macro_f1": rep.macro_f1, "macro_f1_se": _finite(rep.macro_f1_se),
        "f1": dict(zip(names, rep.f1)), "f1_se": {c: _finite(v) for c, v in zip(names, rep.f1_se)},
        "precision": dict(zip(names, rep.precision)), "recall": dict(zip(names, rep.recall)),
        "confusion": rep.confusion,
        "agreement": fid["agreement"], "agreement_se": _se(np.array(boot_agree)),
        "agreement_confident": _finite(agree_conf), "agreement_confident_se": _se(np.array(boot_conf)),
        "confident_share": float(confident.mean()), "confident_share_se": _se(np.array(boot_share)),
        "mean_kl": fid["mean_kl"], "mean_kl_se": _se(np.array(boot_kl)),
        "predicted": pred.tolist(), "p_top": [round(float(p), 6) for p in probs.max(1)],
    }


def evaluate_models(reference: nn.Module, candidates: Mapping[str, nn.Module], test_set: TestSet,
                    n_bootstrap: int = 1000, seed: int = 0, progress: bool = True, batch_size: int = 16,
                    reference_name: str = "uncompressed", latency_repeats: int = 7) -> dict[str, Any]:
    """Run the reference and every candidate over ``test_set``; all numbers in one dict.

    The models are put in eval mode with ``torch.channels_last`` weights, in place
    (:func:`hscc_core.inference.optimize_for_inference`); inference is batched under
    ``torch.inference_mode()`` with channels-last float32 inputs.

    Args:
        reference: the uncompressed model (its row comes first, named ``reference_name``).
        candidates: row name -> compressed model; each must share the reference's input
            contract and class names.
        test_set: from :func:`load_test_set` (for the reference's spec).
        n_bootstrap: bootstrap replicates (>= 2) for every SE; the same resampled scans
            serve every model and metric (see :func:`bootstrap_indices`).
        seed: bootstrap seed.
        progress: a tqdm bar per model.
        batch_size: scans per forward pass.
        reference_name: name of the reference row.
        latency_repeats: timed batch-1 passes per model (median reported), all models
            interleaved (:func:`hscc_core.inference.time_forward_interleaved`).

    Returns:
        ``format_version``, ``model`` (reference architecture), ``class_names``,
        ``confident_threshold``, ``bootstrap`` (``n``, ``seed``, ``paired``), ``latency``
        (``batch``, ``repeats``, ``threads``), ``test_set`` (:meth:`TestSet.summary`),
        ``seconds`` and ``rows``: per model ``name``, ``accuracy``/``macro_f1`` (+ ``_se``),
        ``f1``/``f1_se``/``precision``/``recall`` (class -> value), ``confusion``,
        ``agreement`` (+ ``_se``) with the reference's top-1 label,
        ``agreement_confident`` (+ ``_se``) on the scans where the reference's top
        probability is >= :data:`CONFIDENT` and their ``confident_share`` (+ ``_se``),
        ``mean_kl`` (+ ``_se``) = mean KL(reference || model), ``latency_ms``, ``flops``,
        ``gflops``, ``params``, ``vs_reference`` (``None`` for the reference; else
        ``{"accuracy": {"diff", "se"}, "macro_f1": {"diff", "se"}}``, model minus
        reference, paired SEs), and per scan ``predicted`` (label index) and ``p_top``
        (top probability), in ``test_set["files"]`` order. Undefined numbers are ``None``.

    Raises:
        SettingsError: ``n_bootstrap < 2``, ``batch_size < 1``, a candidate with another
            input contract, or a name used twice.
        DataError: an empty test set.
    """
    if n_bootstrap < 2:
        raise SettingsError(f"n_bootstrap must be at least 2 (SEs need two replicates), got {n_bootstrap}")
    if batch_size < 1:
        raise SettingsError(f"batch_size must be at least 1, got {batch_size}")
    if len(test_set) == 0:
        raise DataError("the test set is empty")
    if reference_name in candidates:
        raise SettingsError(f"candidate name {reference_name!r} is the reference's")
    contract = _input_contract(test_set.spec or reference.spec)
    models = {reference_name: reference, **candidates}
    for name, model in models.items():
        if _input_contract(model.spec) != contract:
            raise SettingsError(f"{name} expects another input than the test set was read for "
                                f"({model.spec.input_size} x{model.spec.channels} {model.spec.scaling}/"
                                f"{model.spec.resize}, classes {model.spec.class_names})")
    t0 = time.perf_counter()
    for model in models.values():
        optimize_for_inference(model)
    probs = {name: _probabilities(m, test_set.inputs, batch_size, name, progress) for name, m in models.items()}
    timings = time_forward_interleaved(list(models.values()), test_set.inputs[:1].float(), repeats=latency_repeats)
    y = test_set.labels.numpy()
    idx = bootstrap_indices(len(test_set), n_bootstrap, seed)
    ref_probs = probs[reference_name]
    rows = []
    for (name, model), (_, ms) in zip(models.items(), timings):
        row = _row(name, probs[name], ref_probs, test_set, idx, n_bootstrap, seed)
        source = source_model(model)  # FLOPs are counted in PyTorch, whatever runs the model
        flops = count_flops(source)
        row.update(latency_ms=float(ms), flops=flops, gflops=flops / 1e9, params=count_params(source),
                   runtime=getattr(model, "runtime", "torch"), precision=getattr(model, "precision", "fp32"))
        if name == reference_name:
            row["vs_reference"] = None
        else:
            diff = paired_difference(y, row["predicted"], rows[0]["predicted"], len(test_set.class_names),
                                     n_bootstrap, seed)
            row["vs_reference"] = {k: {"diff": v["diff"], "se": _finite(v["se"])} for k, v in diff.items()}
        rows.append(row)
    return {
        "format_version": FORMAT_VERSION, "model": reference.spec.name, "class_names": list(test_set.class_names),
        "confident_threshold": CONFIDENT, "bootstrap": {"n": n_bootstrap, "seed": seed, "paired": True},
        "latency": {"batch": 1, "repeats": latency_repeats, "threads": torch.get_num_threads()},
        "test_set": test_set.summary(), "rows": rows, "seconds": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------- table
_SHORT = {"glioma": "gli", "meningioma": "men", "notumor": "no", "pituitary": "pit"}


def _pm(value: float | None, se: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + (f"±{se:.{digits}f}" if se is not None else "")


def format_table(result: Mapping[str, Any]) -> str:
    """The result of :func:`evaluate_models` as a printable table (one line per model)
    with a header naming the test set and a footer with each candidate's paired
    difference to the reference."""
    ts, rows = result["test_set"], result["rows"]
    classes = list(result["class_names"])
    counts = ", ".join(f"{c} {n}" for c, n in ts["class_counts"].items())
    head = [f"test set {ts['dataset']}/{ts['split']}: n={ts['n']} ({counts}), {ts['n_skipped']} skipped; "
            f"bootstrap SEs: {result['bootstrap']['n']} paired resamples; sha256 {ts['sha256'][:12]}"]
    for s in ts["skipped"]:
        head.append(f"  skipped {s['file']}: {s['reason']}")
    thr = result.get("confident_threshold", CONFIDENT)
    cols = (["model", "accuracy", "macro-F1"] + [f"F1 {_SHORT.get(c, c)}" for c in classes]
            + ["agreement", f"agree p>={thr:g}", "mean KL", "ms", "GFLOPs"])
    lines = []
    for r in rows:
        conf = r["agreement_confident"]
        conf_txt = "n/a" if conf is None else f"{conf:.3f} ({r['confident_share']:.0%})"
        lines.append([r["name"], _pm(r["accuracy"], r["accuracy_se"]), _pm(r["macro_f1"], r["macro_f1_se"])]
                     + [f"{r['f1'][c]:.3f}" for c in classes]
                     + [_pm(r["agreement"], r["agreement_se"]), conf_txt, f"{r['mean_kl']:.4f}",
                        f"{r['latency_ms']:.1f}", f"{r['gflops']:.3f}"])
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *lines)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        (str(c).ljust(w) if i == 0 else str(c).rjust(w)) for i, (c, w) in enumerate(zip(cells, widths)))
    table = [fmt(cols), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]
    foot = []
    for r in rows[1:]:
        parts = []
        for key, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
            d = r["vs_reference"][key]
            parts.append(f"{label} {d['diff']:+.3f}" + ("" if d["se"] is None else f" ± {d['se']:.3f}"))
        foot.append(f"{r['name']} - {rows[0]['name']}: {', '.join(parts)} (paired)")
        if r.get("agreement_same_runtime") is not None:
            foot.append(f"{r['name']}: agreement with {rows[0]['name']} in the same runtime and precision "
                        f"{_pm(r['agreement_same_runtime'], r.get('agreement_same_runtime_se'))}")
    return "\n".join(head + table + foot)


# ----------------------------------------------------------------------------- sidecar
def write_evaluation(artifact_path: str | os.PathLike[str], result: Mapping[str, Any], row_name: str,
                     artifact_sha256: str | None = None) -> Path:
    """Write the sidecar of the artifact behind row ``row_name`` of ``result`` (atomically).

    It holds ``artifact`` (base name), ``artifact_sha256`` (default: the file's current
    hash; pass the hash of the bytes that were evaluated), ``row``, ``reference`` (the
    first row), ``test_set``, ``bootstrap``, ``confident_threshold``, ``class_names``,
    ``format_version`` and ``created`` (UTC, ISO 8601), and ``runtime_rows``: for each
    other runtime and precision the artifact was evaluated in (``evaluate --runtimes``),
    ``"<runtime> <precision>"`` -> ``{"row", "reference"}`` (the reference compiled in
    the same one, when evaluated), so the app can state what was measured for the runtime
    it runs. Returns the sidecar's path.
    """

    rows = {r["name"]: r for r in result["rows"]}
    if row_name not in rows:
        raise KeyError(f"no row {row_name!r} in the result (rows: {', '.join(rows)})")
    doc = {
        "format_version": FORMAT_VERSION, "artifact": Path(artifact_path).name,
        "artifact_sha256": artifact_sha256 or file_sha256(artifact_path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "row": rows[row_name], "reference": result["rows"][0], "test_set": result["test_set"],
        "bootstrap": result["bootstrap"], "confident_threshold": result["confident_threshold"],
        "class_names": result["class_names"],
        "runtime_rows": _runtime_rows(result["rows"], row_name),
    }
    out = evaluation_path(artifact_path)
    text = json.dumps(doc, indent=1)
    atomic_write(out, lambda tmp: tmp.write_text(text))
    return out


def _same_runtime_reference(rows: Sequence[Mapping[str, Any]], row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The reference (the first row) compiled in ``row``'s runtime and precision, as
    ``evaluate --runtimes`` records it (its ``source``), or ``None``."""
    src = row.get("source") or {}
    if "runtime" not in src:
        return None
    for r in rows:
        s = r.get("source") or {}
        if (s.get("base_row"), s.get("runtime"), s.get("precision")) == (rows[0]["name"], src["runtime"],
                                                                          src["precision"]):
            return r
    return None


def add_same_runtime_agreement(result: Mapping[str, Any]) -> None:
    """Give each candidate's runtime row (``evaluate --runtimes``) ``agreement_same_runtime``
    and its paired bootstrap SE: top-1 agreement with the reference compiled in the same
    runtime and precision, which is the pair the app shows side by side. ``agreement``
    stays the agreement with the reference in PyTorch fp32."""
    rows = result["rows"]
    idx = bootstrap_indices(len(rows[0]["predicted"]), result["bootstrap"]["n"], result["bootstrap"]["seed"])
    for row in rows[1:]:
        ref = _same_runtime_reference(rows, row)
        if ref is None or ref is row:
            continue
        same = np.asarray(row["predicted"]) == np.asarray(ref["predicted"])
        row["agreement_same_runtime"] = float(same.mean())
        row["agreement_same_runtime_se"] = _se(same[idx].mean(1))


def _runtime_rows(rows: Sequence[Mapping[str, Any]], row_name: str) -> dict[str, dict[str, Any]]:
    out = {}
    for r in rows:
        src = r.get("source") or {}
        if src.get("base_row") == row_name and "runtime" in src:
            out[f"{src['runtime']} {src['precision']}"] = {"row": r, "reference": _same_runtime_reference(rows, r)}
    return out
