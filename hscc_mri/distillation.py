"""Faithful distillation of a compressed model on real scans (the lab side of
:func:`hscc_core.function_matching`).

What the product adds to the library: reading the training pool (e.g. the data set's
``Training/`` folder, labels unused) and the selection half of ``Testing/`` through the
model's own input contract, the default settings (:data:`DEFAULT_MATCHING`), the
arithmetic this CPU does fastest, and writing the distilled artifact with a report that
holds the whole curve. Every choice is made on the selection half; the report half is
evaluated once per final candidate (``hscc-mri evaluate``), never here.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import hscc_core
from hscc_core import MatchingConfig, ViewConfig

from .calibration import balanced_files
from .resolve import load_model, save_model_with_report
from .testset import TestSet, load_test_set

__all__ = ["DEFAULT_MATCHING", "TEACHER_RUNTIMES", "distil_artifact", "export_best", "native_bf16", "read_pool",
           "release_teacher"]

#: Where the teacher runs: ``auto`` (the release's int8 graph of the original when it ships
#: one, else PyTorch), ``int8`` (that graph, or an error), ``pytorch`` (the original module in
#: the training precision).
TEACHER_RUNTIMES = ("auto", "int8", "pytorch")

#: The schedule ``hscc-mri distill`` runs unless told otherwise: batches of 32 views of
#: ``Training/`` scans, one pass over the pool an epoch, a peak learning rate of 1e-5 after
#: 50 warm-up steps with a cosine decay, temperature 2 and the feature term at half weight.
#: This is the recipe of every measured curve (``reports/real/distill-curves.json``). Two
#: epochs: on the HSCC 3x and 6x VGG16 the selection KL falls by about a third in the first
#: epoch and no run moved it after that (3x over 2 epochs, 6x over 5). A peak of 2e-4
#: diverged on the HSCC 6x VGG16 (selection agreement 0.885 -> 0.760 -> 0.687 over the
#: first two epochs of 512 views, loss rising; runs/distill pilot of 2026-12-02).
DEFAULT_MATCHING = MatchingConfig(epochs=2, batch_size=32, lr=1e-5, warmup_steps=50, temperature=2.0,
                                  feature_weight=0.5, views=ViewConfig(), checkpoint_every=25)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 / AMX): training in bf16
    autocast is then about twice as fast; elsewhere it is emulated and slower."""
    from .training import autocast_dtype

    return autocast_dtype("auto", torch.device("cpu")) is torch.bfloat16


def read_pool(folder: str | os.PathLike, spec: Any, max_scans: int | None = None, seed: int = 0,
              progress: bool = True) -> TestSet:
    """The scans under ``folder`` (class folders; labels kept but never used in the loss) in
    ``spec``'s input layout, at most ``max_scans`` of them balanced over classes."""
    data = load_test_set(folder, spec, progress=progress)
    if max_scans is None or max_scans >= len(data):
        return data
    chosen = balanced_files([Path(f) for f in data.files], max_scans, seed)
    keep = {p.as_posix() for p in chosen}
    index = torch.tensor([i for i, f in enumerate(data.files) if f in keep])
    return replace(data, inputs=data.inputs[index], labels=data.labels[index],
                   files=[data.files[i] for i in index.tolist()])


def release_teacher(model_name: str) -> tuple[Callable | None, str]:
    """The shipped int8 OpenVINO graph of the registry model ``model_name`` as a distillation
    teacher (logits and the feature map before the last pooling layer), checked against the
    release manifest; ``(None, why)`` when the release has none or it cannot run here.

    On a 2-core AVX-512 machine it runs a batch of 32 VGG16 views in 1.3 s against 3.0 s for
    PyTorch bf16 (the dense int8 graph agrees with float32 on 99.5% of real test scans)."""
    from .release import ReleaseError, load_release
    from .runtimes import RuntimeUnavailable

    try:
        release = load_release()
        entry = next((m for m in release.models.values() if m.get("kind") == "reference"
                      and m.get("model") == model_name and m.get("int8")), None)
        if entry is None:
            return None, f"the release has no int8 graph of {model_name}"
        from .runtimes.openvino_backend import feature_teacher, read_ir

        xml = release.verify(entry["int8"]["graph"])
        release.verify(entry["int8"]["weights"])
        return feature_teacher(read_ir(xml)), f"int8 OpenVINO ({entry['int8']['graph']}, checked)"
    except (ReleaseError, RuntimeUnavailable) as e:
        return None, str(e)


def distil_artifact(artifact: str | os.PathLike, pool_dir: str | os.PathLike, select_dir: str | os.PathLike,
                    out: str | os.PathLike | None, config: MatchingConfig = DEFAULT_MATCHING,
                    teacher: str | None = None, teacher_runtime: str = "auto", checkpoint: str | os.PathLike | None = None,
                    pool_scans: int | None = None,
                    device: str | torch.device = "cpu", time_limit_s: float | None = None, progress: bool = True,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Distil the compressed model at ``artifact`` toward its original by function matching.

    Args:
        artifact: a compressed artifact (its base registry model is the teacher).
        pool_dir: training scans (class folders, e.g. ``brain-mri/Training``).
        select_dir: the selection scans (e.g. the ``select`` half of ``Testing/``).
        out: where the distilled artifact goes (with its report JSON) once the schedule has
            run; ``None`` writes nothing but the checkpoint.
        config: the schedule (:data:`DEFAULT_MATCHING`).
        teacher: registry name or artifact path of the original (default: the artifact's
            base registry model, as the build cache compresses it).
        teacher_runtime: one of :data:`TEACHER_RUNTIMES` (the selection measurement always
            uses the float32 original).
        checkpoint: resume from / keep writing this file.
        pool_scans: at most this many pool scans, balanced over classes (the curve of
            agreement against the amount of training data).
        device: ``cpu`` or ``cuda``.
        time_limit_s: stop after this many seconds (run again with the same checkpoint to
            continue).
        progress: progress lines on stderr.
        log: where one-line messages go (default stderr).

    Returns:
        The JSON record: the library's :class:`~hscc_core.MatchingResult` plus the data
        read, the teacher, where the artifact went (``out`` when finished).
    """
    from .resolve import resolve_model

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    student = load_model(artifact)
    if not getattr(student, "hscc_replacements", None):
        raise hscc_core.DistillationError(f"{Path(artifact).name} is not a compressed model")
    base = teacher or hscc_core.load_metadata(artifact).get("base")
    original: nn.Module = resolve_model(base)
    if getattr(original, "hscc_replacements", None):
        raise hscc_core.DistillationError(f"the teacher {Path(base).name} is itself compressed")
    if teacher_runtime not in TEACHER_RUNTIMES:
        raise hscc_core.DistillationError(f"teacher_runtime must be one of {TEACHER_RUNTIMES}, got {teacher_runtime!r}")
    teacher_fn, teacher_how = None, f"PyTorch {config.precision}"
    if teacher_runtime != "pytorch" and torch.device(device).type == "cpu" and not Path(str(base)).suffix:
        teacher_fn, why = release_teacher(str(base))
        if teacher_fn is not None:
            teacher_how = why
        elif teacher_runtime == "int8":
            raise hscc_core.DistillationError(f"no int8 teacher: {why}")
    spec = student.spec
    pool = read_pool(pool_dir, spec, pool_scans, config.seed, progress)
    select = load_test_set(select_dir, spec, progress=progress)
    base = Path(base).name
    log(f"distilling {Path(artifact).name} toward {base}: {len(pool)} pool scans ({pool.dataset}/{pool.split}), "
        f"{len(select)} selection scans ({select.folder}); student {config.precision}, teacher {teacher_how}; read in "
        f"{time.perf_counter() - t0:.0f} s")
    result = hscc_core.function_matching(student, original, pool.inputs, select.inputs, config, teacher_fn=teacher_fn,
                                         mean=spec.mean,
                                         std=spec.std, checkpoint=checkpoint, device=device,
                                         time_limit_s=time_limit_s, progress=progress, log=log)
    record: dict[str, Any] = {
        "distillation": "function matching", **result.to_dict(), "teacher": base, "teacher_runtime": teacher_how, "student": Path(artifact).name,
        "student_sha256": hscc_core.file_sha256(artifact),
        "pool": {"folder": pool.folder, "split": pool.split, "n": len(pool), "sha256": pool.sha256,
                 "max_scans": pool_scans},
        "select": {"folder": select.folder, "n": len(select), "sha256": select.sha256},
        "device": str(device), "threads": torch.get_num_threads(), "cpu": _cpu(),
    }
    if out is not None and result.finished:
        from .cache import load_report

        report = dict(load_report(artifact))
        report["distillation"] = record
        save_model_with_report(student.cpu(), out, report)
        record["out"] = str(out)
        log(f"wrote {out}: selection agreement {result.before['agreement']:.4f} -> {result.best['agreement']:.4f} "
            f"(best epoch {result.best['epoch']})")
    return record


def export_best(artifact: str | os.PathLike, checkpoint: str | os.PathLike, out: str | os.PathLike,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the best student kept in a distillation ``checkpoint`` (best selection
    agreement so far) as an artifact at ``out``, also while the schedule is unfinished: a
    usable model from a long run, with its report saying how far the run had got.

    Args:
        artifact: the compressed artifact the run started from (its structure and report).
        checkpoint: the run's checkpoint (:func:`hscc_core.checkpoint_summary`).
        out: where the artifact goes (with its report JSON).

    Returns:
        The ``distillation`` record written into the report.

    Raises:
        DistillationError: the checkpoint cannot be read or does not fit the artifact.
    """
    from .cache import load_report

    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    weights, summary = hscc_core.checkpoint_summary(checkpoint)
    student = load_model(artifact)
    try:
        student.load_state_dict(weights)
    except RuntimeError as e:
        raise hscc_core.DistillationError(f"{Path(checkpoint).name} does not fit {Path(artifact).name}: {e}") from e
    record = {"distillation": "function matching", **summary, "exported_from": Path(checkpoint).name,
              "student": Path(artifact).name, "student_sha256": hscc_core.file_sha256(artifact)}
    report = dict(load_report(artifact))
    report["distillation"] = record
    save_model_with_report(student.eval(), out, report)
    log(f"wrote {out}: the best epoch ({record['best']['epoch']}) of {Path(checkpoint).name} at step "
        f"{record['step']}/{record['total_steps']}: selection agreement {record['before']['agreement']:.4f} -> "
        f"{record['best']['agreement']:.4f}")
    return record


def _cpu() -> str:
    from .runtimes import cpu_summary

    return cpu_summary()
