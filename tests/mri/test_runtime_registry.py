"""The runtime registry (:mod:`hscc_mri.runtimes.registry`): each backend declares what it
can run (precisions and their conditions), its int8 options and candidate settings, and
how its quantised graph is kept; what runs here, the option checks and the graph store
follow from those declarations. Real backends; the other CPU kind through the CPU flags,
as the other runtime tests do."""
from __future__ import annotations

import json

import pytest
import torch

from hscc_mri.deploy import SHIPPED_PLANS
from hscc_mri.errors import SettingsError
from hscc_mri.runtimes import (BACKENDS, RUNTIMES, Choice, Precision, Runtime, RuntimeUnavailable, available, backend,
                               compile_model, cpu, runtime_label)

from tests.mri.test_runtimes import AVX2_FLAGS, Mini, _seeded, phantoms  # noqa: F401 - a fixture


def test_every_runtime_has_one_backend_that_names_itself():
    assert tuple(BACKENDS) == tuple(Runtime) and RUNTIMES == ("torch", "onnxruntime", "openvino")
    for runtime in Runtime:
        assert backend(runtime).runtime == runtime == backend(runtime.value).runtime
    assert [b.label for b in BACKENDS.values()] == ["PyTorch", "ONNX Runtime", "OpenVINO"]
    assert runtime_label("openvino", "int8") == "OpenVINO INT8" == Choice(Runtime.OPENVINO, Precision.INT8).label
    assert runtime_label("tensorrt", "fp32") == "tensorrt FP32"  # an unknown runtime by its own name
    with pytest.raises(SettingsError, match="tensorrt"):
        backend("tensorrt")


def test_backends_declare_their_int8_options_and_graph_format():
    assert {r: (b.int8_options, b.graph_suffix) for r, b in BACKENDS.items()} == {
        "torch": (frozenset(), None), "onnxruntime": ({"reduce_range"}, "onnx"), "openvino": ({"overflow_fix"}, "xml")}
    assert Precision.INT8 not in backend("torch").precisions and Precision.BF16 not in backend("onnxruntime").precisions
    with pytest.raises(SettingsError, match="overflow_fix"):
        backend("onnxruntime").check_int8_options({"overflow_fix": "enable"})
    with pytest.raises(SettingsError, match="reduce_range"):
        compile_model(_seeded(Mini), "torch", "int8", int8_options={"reduce_range": True})


def test_what_runs_here_is_what_the_backends_say(monkeypatch):
    """bf16 only with native bfloat16 (PyTorch and OpenVINO; ONNX Runtime has no kernels);
    int8 only in the runtimes that have it (OpenVINO's with NNCF installed)."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_FLAGS)
    assert available() == [(b.runtime, p) for b in BACKENDS.values() for p in Precision if b.runs(p)]
    assert not any(b.runs("bf16") for b in BACKENDS.values())
    assert backend("onnxruntime").runs("int8") and backend("openvino").runs("int8") and not backend("torch").runs("int8")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_FLAGS | {"avx512f", "avx512_bf16"})
    assert [r for r, b in BACKENDS.items() if b.runs("bf16")] == ["torch", "openvino"]


def test_int8_candidates_follow_the_cpu_kind(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_FLAGS)
    assert backend("openvino").int8_candidates() == [{"overflow_fix": "first_layer"}, {"overflow_fix": "enable"}]
    assert backend("onnxruntime").int8_candidates() == [{"reduce_range": False}]
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_FLAGS | {"avx512_vnni"})
    assert backend("openvino").int8_candidates() == [{}] == backend("torch").int8_candidates()


def test_shipped_plans_are_keyed_on_what_the_backends_still_say(monkeypatch):
    """Every committed plan was keyed on its runtime's candidate settings for its CPU kind:
    the registry must give the same, or a fresh clone would no longer find them."""
    files = sorted(SHIPPED_PLANS.glob("*.json"))
    assert files
    for path in files:
        key = json.loads(path.read_text())["key"]
        vnni = key["int8"]["vnni"]
        monkeypatch.setattr(cpu, "cpu_flags", lambda v=vnni: AVX2_FLAGS | ({"avx512_vnni"} if v else set()))
        assert backend(key["runtime"]).int8_candidates() == key["int8"]["candidates"], path.name


def test_a_kept_quantised_graph_is_written_and_read_by_its_backend(tmp_path, phantoms):
    """The graph store's round trip, through each int8 backend's own format."""
    mini = _seeded(Mini)
    calib = [phantoms[:8]]
    for runtime in ("onnxruntime", "openvino"):
        found = backend(runtime)
        quant = compile_model(mini, runtime, "int8", calibration=calib)
        path = tmp_path / f"mini.{found.graph_suffix}"
        found.write_graph(quant, path)
        again = compile_model(mini, runtime, "int8", quantized=found.read_graph(path))
        with torch.inference_mode():
            torch.testing.assert_close(again(phantoms[8:12]), quant(phantoms[8:12]), rtol=0, atol=1e-5)
    with pytest.raises(RuntimeUnavailable):
        backend("torch").read_graph(tmp_path / "none")
