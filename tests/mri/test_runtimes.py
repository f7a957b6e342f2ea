"""The inference runtimes (:mod:`hscc_mri.runtimes`) and the ``export`` command, on tiny
real models: every runtime x precision this machine can run, dense and HSCC-compressed."""
from __future__ import annotations

import copy

import json
import re

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import hscc_core
from hscc_mri import runtimes
from hscc_mri.bundle import ArtifactBundle
from hscc_mri.calibration import calibration_batches
from hscc_mri.cli import main
from hscc_mri.identity import module_identity, weights_identity
from hscc_mri.inference import predict_tensor
from hscc_mri.runtimes import (RuntimeUnavailable, available, compile_model, cpu, has_native_bf16, has_vnni, layer_groups,
                               max_probability_gap, node_group, onnx_bytes, resolve_choice, source_model)
from hscc_mri.runtimes.quantize import plan_int8
from models import build_model
from preprocessing.phantoms import phantom_sample

SPEC = build_model("alexnet", pretrained=False).spec  # grey 128x128, the four classes
PAIRS = available()
#: A CPU like the one this suite is developed on: AVX2, neither native bf16 nor VNNI.
AVX2_FLAGS = frozenset({"sse4_2", "avx", "avx2", "fma"})


class Tiny(nn.Module):
    """A small AlexNet-shaped classifier (features / avgpool / classifier, which HSCC's
    sequential refit needs). Its 3x3 adaptive pool of 8x8 maps is one the ONNX exporter
    cannot write natively."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=4, padding=2), nn.ReLU(),
            nn.Conv2d(16, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(3)
        self.classifier = nn.Sequential(nn.Linear(width * 9, 64), nn.ReLU(), nn.Linear(64, 4))
        self.spec = SPEC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Mini(nn.Module):
    """Three layer groups only: int8 plans re-quantise once per group."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 5, stride=4, padding=2), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Linear(16 * 4, 4))
        self.spec = SPEC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _seeded(cls: type[nn.Module]) -> nn.Module:
    torch.manual_seed(0)
    return cls().eval()


@pytest.fixture(scope="module")
def phantoms() -> torch.Tensor:
    """40 phantom scans as model inputs: 24 to calibrate, 16 to check."""
    return torch.cat(calibration_batches([phantom_sample(i, seed=3)[0] for i in range(40)], SPEC, batch_size=40))


@pytest.fixture(scope="module")
def calibration(phantoms) -> list[torch.Tensor]:
    return [phantoms[i:i + 8] for i in range(0, 24, 8)]


@pytest.fixture(scope="module")
def inputs(phantoms) -> torch.Tensor:
    return phantoms[24:]


@pytest.fixture(scope="module")
def dense() -> nn.Module:
    return _seeded(Tiny)


@pytest.fixture(scope="module")
def compressed(dense, calibration) -> nn.Module:
    model, report = hscc_core.compress(dense, calibration, hscc_core.CompressionConfig(method="hscc", budget=3.0),
                                       progress=False)
    assert report.flops_original / report.flops_compressed >= 2.9
    return model


@pytest.fixture(scope="module", params=["dense", "hscc"])
def model(request) -> nn.Module:
    return request.getfixturevalue("dense" if request.param == "dense" else "compressed")


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x).float()


def test_this_machine_offers_fp32_everywhere_and_int8_outside_pytorch():
    assert {("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32")} <= set(PAIRS)
    assert ("torch", "int8") not in PAIRS and ("onnxruntime", "bf16") not in PAIRS
    assert all(p != "bf16" for _, p in PAIRS) or has_native_bf16()


@pytest.mark.parametrize("runtime,precision", PAIRS, ids=[f"{r}-{p}" for r, p in PAIRS])
def test_every_runtime_and_precision_matches_pytorch_fp32(model, runtime, precision, calibration, inputs):
    ref = _logits(model, inputs)
    fast = compile_model(model, runtime, precision, calibration=calibration)
    assert source_model(fast) is model and fast.spec is model.spec
    assert (fast.runtime, fast.precision) == (runtime, precision) and fast.label == runtimes.runtime_label(
        runtime, precision)
    json.dumps(fast.details)  # JSON-ready, for reports and the page
    out = _logits(fast, inputs)
    assert out.shape == ref.shape and out.dtype == torch.float32
    agreement = (out.argmax(1) == ref.argmax(1)).float().mean().item()
    if precision == "fp32":
        assert (out - ref).abs().max().item() < 1e-3
    else:  # int8 / bf16: the same answers, within a loose bound, and not float32 in disguise
        assert agreement >= 0.75, agreement
        assert max_probability_gap(out.numpy(), ref.numpy()) < 0.02
        assert (out - ref).abs().max().item() > 0
    # Dynamic batch: one and five images, each row as in the batch of 16.
    for n in (1, 5):
        part = _logits(fast, inputs[:n])
        assert part.shape == (n, 4)
        assert (part - out[:n]).abs().max().item() < (1e-3 if precision == "fp32" else 0.05)


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
def test_compiled_model_runs_under_the_timer_and_predict_tensor(dense, inputs, runtime):
    fast = compile_model(dense, runtime, "fp32")
    logits, ms = hscc_core.time_forward(fast, inputs[:2], repeats=2)
    assert logits.shape == (2, 4) and ms > 0
    assert (logits - _logits(dense, inputs[:2])).abs().max().item() < 1e-3
    res = predict_tensor(fast, inputs[0], repeats=2)
    assert res["label"] in SPEC.class_names and set(res["probabilities"]) == set(SPEC.class_names)
    assert abs(sum(res["probabilities"].values()) - 1) < 1e-5 and res["latency_ms"] > 0
    ref = predict_tensor(dense, inputs[0], repeats=1)
    assert res["label"] == ref["label"]
    assert max(abs(res["probabilities"][c] - ref["probabilities"][c]) for c in SPEC.class_names) < 1e-4


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_saturation_guard_keeps_int8_close_on_a_model_with_wide_activations(calibration, inputs, runtime):
    """He-initialised weights, no biases: outputs that vary with the input and wide
    activation ranges. Without VNNI the CPU's u8 x s8 products saturate unless every
    layer's weights are 7-bit (measured here on AVX2 with the guard off: top-1 agreement
    0.38-0.75). The guard is an option, not the default: on the real VGG16 it costs far
    more agreement than it saves (scripts/int8_options.py), so this checks that asking
    for it works."""
    from hscc_mri.runtimes.onnxruntime_backend import compile_onnxruntime
    from hscc_mri.runtimes.openvino_backend import compile_openvino

    wide = _seeded(Tiny)
    with torch.no_grad():
        for layer in wide.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
    ref = _logits(wide, inputs)
    assert len(set(ref.argmax(1).tolist())) >= 3  # the answers depend on the input
    if runtime == "openvino":
        quant = compile_openvino(wide, "int8", calibration, overflow_fix="enable")
        assert quant.details["overflow_fix"] == "enable"
    else:
        quant = compile_onnxruntime(wide, "int8", calibration, reduce_range=True)
        assert quant.details["reduce_range"] is True
    out = _logits(quant, inputs)
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.75
    assert max_probability_gap(out.numpy(), ref.numpy()) < 0.1


def test_int8_keeps_the_chosen_layers_in_float32(compressed, calibration, inputs):
    """Every layer group kept in fp32 must give the float32 answer (the ignored scopes
    match the graph's node names)."""
    ref = _logits(compressed, inputs)
    groups = layer_groups(compressed)
    for runtime in ("onnxruntime", "openvino"):
        quant = _logits(compile_model(compressed, runtime, "int8", calibration=calibration, keep_fp32=groups), inputs)
        assert (quant - ref).abs().max().item() < 1e-3, runtime


def test_layer_groups_list_compressed_layers_once_and_graph_nodes_map_to_them(compressed):
    groups = layer_groups(compressed)
    assert groups == ["features.0", "features.2", "features.5", "features.8", "classifier.0", "classifier.2"]
    replaced = [g for g in groups if runtimes.export._is_compressed(compressed.get_submodule(g))]
    assert replaced == ["features.2", "features.5", "features.8", "classifier.0"]  # not first conv, last linear
    assert not any(g.endswith((".first", ".second")) for g in groups)
    graph = onnx.load_from_string(onnx_bytes(compressed)).graph
    mapped: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):  # a bias-free Linear is a MatMul
            group = node_group(node.name, groups)
            # The only product outside the groups: the adaptive pool, exported as matmuls.
            assert group is not None or node.name.startswith("/avgpool/"), node.name
            mapped.setdefault(group, []).append(node.op_type)
    assert set(mapped) - {None} == set(groups)
    for g in replaced:  # a low-rank layer is two ops, both in its group
        assert len(mapped[g]) == 2, (g, mapped[g])
    assert node_group("/features/features.2/first/Conv", groups) == "features.2"


def test_node_group_follows_nested_module_scopes():
    """ResNet-style names: the exporter writes ``layer1.0.conv1`` as ``/layer1/layer1.0/conv1/``."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
            self.inner = nn.Sequential(nn.Conv2d(4, 4, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(self.conv1(x))

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sequential(Block(), Block()), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    groups = layer_groups(net)
    assert groups == ["0", "1.0.conv1", "1.0.inner.0", "1.1.conv1", "1.1.inner.0", "4"]
    nodes = onnx.load_from_string(onnx_bytes(net, (1, 16, 16))).graph.node
    found = [node_group(n.name, groups) for n in nodes if n.op_type in ("Conv", "Gemm")]
    assert found == groups


def test_adaptive_pool_the_exporter_cannot_write_is_exported_exactly(inputs):
    """AlexNet's 6x6 pool of 3x3 maps (and Tiny's 3x3 of 8x8): run as matrix products in
    the export, with the model left as it was."""
    alexnet = build_model("alexnet", pretrained=False).eval()
    fast = compile_model(alexnet, "onnxruntime", "fp32")
    assert (_logits(fast, inputs[:3]) - _logits(alexnet, inputs[:3])).abs().max().item() < 1e-4
    assert type(alexnet.avgpool) is nn.AdaptiveAvgPool2d  # the export changed a copy
    training = _seeded(Tiny).train()
    onnx_bytes(training)
    assert training.training and type(training.avgpool) is nn.AdaptiveAvgPool2d


def test_bf16_is_refused_where_the_cpu_does_not_have_it(monkeypatch, dense):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_FLAGS)
    assert not has_native_bf16() and "no native bf16" in runtimes.cpu_summary()
    for runtime in ("torch", "openvino"):
        with pytest.raises(RuntimeUnavailable, match="AVX2, no native bf16"):
            compile_model(dense, runtime, "bf16")
    with pytest.raises(RuntimeUnavailable, match="AVX2, no native bf16"):
        resolve_choice("openvino", "bf16")
    with pytest.raises(RuntimeUnavailable, match="no bf16"):
        compile_model(dense, "onnxruntime", "bf16")
    assert all(p != "bf16" for _, p in available())
    choice = resolve_choice("auto", "auto")
    assert (choice.runtime, choice.precision) == ("openvino", "fp32") and "AVX2" in choice.reason
    assert resolve_choice("auto", "auto", default_precision="int8").precision == "int8"


def test_auto_chooses_bf16_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: AVX2_FLAGS | {"avx512f", "avx512_bf16"})
    assert ("openvino", "bf16") in available() and ("torch", "bf16") in available()
    assert resolve_choice("auto", "auto").precision == "bf16"
    assert resolve_choice("openvino", "bf16").label == "OpenVINO BF16"


@pytest.mark.parametrize("runtime", ["torch", "openvino"])
def test_bf16_runs_where_native_and_is_refused_elsewhere(dense, inputs, runtime):
    if not has_native_bf16():  # this CPU: the refusal, naming it
        with pytest.raises(RuntimeUnavailable, match=re.escape(runtimes.cpu_summary())):
            compile_model(dense, runtime, "bf16")
        return
    fast = compile_model(dense, runtime, "bf16")
    out, ref = _logits(fast, inputs), _logits(dense, inputs)
    assert fast.precision == "bf16"
    assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= 0.75
    assert max_probability_gap(out.numpy(), ref.numpy()) < 0.02


def test_int8_plan_stops_at_once_when_the_target_is_met(phantoms):
    mini = _seeded(Mini)
    messages: list[str] = []
    plan = plan_int8(mini, "openvino", [phantoms[:8]], [phantoms[24:32]], target=0.0, layerwise=False,
                     progress=False, log=messages.append)
    assert plan.met and plan.keep_fp32 == [] and plan.steps == [] and plan.layers == []
    assert plan.check_images == 8 and plan.calibration_images == 8 and plan.seconds > 0
    assert len(messages) == 1 and "every layer" in messages[0]
    json.dumps(plan.to_dict())


def test_int8_plan_reports_every_step_when_the_target_cannot_be_met(phantoms):
    mini = _seeded(Mini)
    groups = layer_groups(mini)
    plan = plan_int8(mini, "openvino", [phantoms[:8]], [phantoms[24:32]], target=1.01, progress=False,
                     log=lambda m: None)
    assert not plan.met and plan.to_dict()["met"] is False
    assert [d["layer"] for d in plan.layers] == groups
    assert plan.steps and all(1 <= s["fp32_layers"] <= len(groups) for s in plan.steps)
    assert plan.steps[-1]["fp32_layers"] == len(groups)  # the search went all the way up
    assert plan.keep_fp32 and set(plan.keep_fp32) <= set(groups)
    assert 0.0 <= plan.agreement <= 1.0


def test_export_command_writes_checked_onnx_and_openvino_files(tmp_path, capsys):
    out = tmp_path / "a.onnx"
    assert main(["export", "--model", "alexnet", "--out", str(out), "--openvino", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    xml, binary = out.with_suffix(".xml"), out.with_suffix(".bin")
    assert result["files"] == {"onnx": {"path": str(out), "bytes": out.stat().st_size},
                               "openvino_xml": {"path": str(xml), "bytes": xml.stat().st_size},
                               "openvino_bin": {"path": str(binary), "bytes": binary.stat().st_size}}
    assert out.stat().st_size > 1e6 and binary.stat().st_size > 1e6  # float32 weights, not fp16
    assert set(result["max_dp"]) == {"onnxruntime", "openvino"}
    assert all(0 <= dp < 1e-3 for dp in result["max_dp"].values())
    assert result["batch_sizes"] == [1, 8] and result["inputs"] == {"sample_scans": 6, "random": 2}
    assert result["ok"] is True
    # The file stands alone: read back, with any batch size.
    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_export_command_fails_with_status_1_when_the_check_fails(tmp_path, capsys, monkeypatch):
    from hscc_mri.cli import export

    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # any difference, even none, fails
    assert main(["export", "--model", "alexnet", "--out", str(tmp_path / "a.onnx"), "--check", "2"]) == 1
    captured = capsys.readouterr()
    assert "ONNX Runtime" in captured.out and "FAILED" in captured.out
    assert "disagrees with PyTorch" in captured.err


def test_export_command_rejects_bad_arguments_with_status_2(tmp_path, capsys):
    assert main(["export", "--model", "no-such-model", "--out", str(tmp_path / "a.onnx")]) == 2
    assert "neither a model name" in capsys.readouterr().err
    assert main(["export", "--model", "alexnet", "--out", str(tmp_path / "a.xml")]) == 2
    assert ".onnx" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_export_command_is_listed_with_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "--openvino" in text and "max |dp|" in text and "example" in text


def test_int8_plan_is_measured_once_kept_beside_the_artifact_and_found_when_shipped(compressed, calibration, tmp_path,
                                                                                    monkeypatch):
    """deploy's int8 plan: measured once and saved; loaded when nothing it depends on
    changed; measured anew when the artifact's bytes change; a shipped copy (named by the
    artifact's SHA-256) serves a fresh clone that has no sidecar."""
    import shutil

    from hscc_mri import deploy

    path = tmp_path / "tiny-hscc.safetensors"
    hscc_core.save(compressed, path, base=SPEC.name, model_spec=SPEC.to_dict())
    messages: list[str] = []
    first = deploy.int8_plan(compressed, "openvino", path, calibration=calibration, progress=False,
                             log=messages.append)
    side = ArtifactBundle.of(path).int8_plan("openvino")
    assert side.is_file() and any("measuring" in m for m in messages)
    assert first["key"]["weights_sha256"] == weights_identity(path)
    assert first["key"]["int8"]["vnni"] == has_vnni() and "candidates" in first["key"]["int8"]
    messages.clear()
    assert deploy.int8_plan(compressed, "openvino", path, calibration=calibration, log=messages.append) == first
    assert not messages  # loaded, not measured
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.move(side, shipped / f"{first['key']['weights_sha256'][:16]}-openvino.json")
    monkeypatch.setattr(deploy, "SHIPPED_PLANS", shipped)
    assert deploy.int8_plan(compressed, "openvino", path, calibration=calibration, log=messages.append) == first
    assert not messages and not side.exists()
    changed = copy.deepcopy(compressed)  # other weights under the same name: the plan no longer applies
    with torch.no_grad():
        next(changed.parameters()).mul_(1.01)
    hscc_core.save(changed, path, base=SPEC.name, model_spec=SPEC.to_dict())
    deploy.int8_plan(changed, "openvino", path, calibration=calibration, progress=False, log=messages.append)
    assert any("measuring" in m for m in messages) and side.is_file()


def test_int8_plan_chooses_among_quantiser_settings_and_reports_each(phantoms):
    """Several candidate settings: each is measured (every layer int8, then the search on
    the shared ranking), the plan names the chosen one, and compiling with it reproduces
    the plan's agreement on the check images."""
    from hscc_core import fidelity

    mini = _seeded(Mini)
    calib, check = [phantoms[:8]], [phantoms[24:32]]
    candidates = [{"overflow_fix": "first_layer"}, {"overflow_fix": "enable"}]
    plan = plan_int8(mini, "openvino", calib, check, target=0.99, progress=False, log=lambda _m: None,
                     options=candidates)
    assert [c["options"] for c in plan.candidates] == candidates
    assert plan.options in candidates
    chosen = next(c for c in plan.candidates if c["options"] == plan.options)
    assert chosen["keep_fp32"] == plan.keep_fp32 and chosen["agreement"] == plan.agreement
    met = [c for c in plan.candidates if c["agreement"] >= 0.99]
    if met:  # the fewest float32 layers among those that met the target
        assert len(plan.keep_fp32) == min(len(c["keep_fp32"]) for c in met)
    quant = compile_model(mini, "openvino", "int8", calibration=calib, keep_fp32=plan.keep_fp32,
                          int8_options=plan.options)
    assert quant.details["overflow_fix"] == plan.options["overflow_fix"]
    with torch.inference_mode():
        ref = torch.softmax(mini(check[0]), 1).double().numpy()
        got = torch.softmax(quant(check[0]), 1).double().numpy()
    assert fidelity(ref, got)["agreement"] == pytest.approx(plan.agreement)
    json.dumps(plan.to_dict())


def test_compile_model_refuses_an_int8_option_the_runtime_lacks(calibration):
    mini = _seeded(Mini)
    with pytest.raises(ValueError, match="reduce_range"):
        compile_model(mini, "openvino", "int8", calibration=calibration, int8_options={"reduce_range": True})


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_deploy_plans_a_registry_model_and_keeps_its_quantised_graph(runtime, calibration, inputs, tmp_path):
    """A model without an artifact (the dense reference) gets its own plan, kept in the
    cache folder under its weights' identity; the quantised graph is kept beside it and
    the next deploy compiles it without quantising (same logits); other weights, other files."""
    from hscc_mri import deploy
    from hscc_mri.runtimes import Choice

    mini = _seeded(Mini)
    messages: list[str] = []
    first = deploy.deploy(mini, Choice(runtime, "int8"), calibration=calibration, cache_dir=tmp_path,
                          progress=False, log=messages.append)
    identity = module_identity(mini)
    side = tmp_path / f"{SPEC.name}-{identity[:10]}.int8-{runtime}.json"
    assert side.is_file() and any("measuring" in m for m in messages)
    assert first.details["plan"]["keep_fp32"] == json.loads(side.read_text())["keep_fp32"]
    assert first.details["quantized_graph"]["reused"] is False
    kept = tmp_path / first.details["quantized_graph"]["file"]
    assert kept.is_file() and (runtime != "openvino" or kept.with_suffix(".bin").is_file())
    messages.clear()
    again = deploy.deploy(mini, Choice(runtime, "int8"), cache_dir=tmp_path, progress=False, log=messages.append)
    assert not messages and again.details["quantized_graph"]["reused"] is True  # no calibration read, no plan
    torch.testing.assert_close(_logits(again, inputs), _logits(first, inputs), rtol=0, atol=1e-5)
    other = copy.deepcopy(mini)
    with torch.no_grad():
        next(other.parameters()).mul_(1.5)
    assert module_identity(other) != identity
    third = deploy.deploy(other, Choice(runtime, "int8"), calibration=calibration, cache_dir=tmp_path,
                          progress=False, log=messages.append)
    assert third.details["quantized_graph"]["reused"] is False and any("measuring" in m for m in messages)


def test_auto_runs_int8_only_where_every_model_has_a_measured_plan_at_hand(calibration, tmp_path):
    """``auto`` precision: int8 once every model has a plan for this CPU kind at hand (no
    plan is measured to decide), else the float choice with the models lacking one named;
    an asked precision is taken as asked. With the plan and the quantised graph kept, a
    start does not read the calibration set (a function given for it is not called)."""
    from hscc_mri import deploy
    from hscc_mri.runtimes import Choice, Request, decide

    mini, other = _seeded(Mini), _seeded(Mini)
    with torch.no_grad():
        next(other.parameters()).mul_(1.5)

    def choose(runtime: str, precision: str, *models: nn.Module) -> Choice:
        return decide(Request(runtime, precision, [deploy.Deployable(m, None, tmp_path) for m in models])).choice

    float_choice = resolve_choice("openvino", "auto")
    before = choose("openvino", "auto", mini)
    assert before.precision == float_choice.precision != "int8"
    assert "no measured int8 plan" in before.reason and SPEC.name in before.reason
    assert not list(tmp_path.iterdir())  # deciding measured nothing
    deploy.int8_plan(mini, "openvino", calibration=calibration, progress=False, log=lambda _m: None,
                     cache_dir=tmp_path)
    assert deploy.find_int8_plan(mini, "openvino", cache_dir=tmp_path) is not None
    chosen = choose("openvino", "auto", mini)
    assert (chosen.runtime, chosen.precision) == ("openvino", "int8") and "measured plan" in chosen.reason
    mixed = choose("openvino", "auto", mini, other)
    assert mixed.precision != "int8" and mixed.reason.count(SPEC.name) == 1  # only the one lacking a plan
    assert choose("openvino", "fp32", other).precision == "fp32"
    assert choose("torch", "auto", mini).precision != "int8"  # torch has none
    reads: list[int] = []

    def read_calibration() -> list[torch.Tensor]:
        reads.append(1)
        return calibration

    first = deploy.deploy(mini, chosen, calibration=read_calibration, cache_dir=tmp_path, progress=False,
                          log=lambda _m: None)
    assert reads == [1] and first.details["quantized_graph"]["reused"] is False
    again = deploy.deploy(mini, Choice("openvino", "int8"), calibration=read_calibration, cache_dir=tmp_path,
                          progress=False, log=lambda _m: None)
    assert reads == [1] and again.details["quantized_graph"]["reused"] is True
