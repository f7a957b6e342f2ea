"""``bench_peers`` and ``bench --peers``: every model in every runtime x precision, timed
together, joined with an evaluation, drawn as a Pareto plot. Real runtimes throughout
(tiny models, two timed runs), so it is about the bookkeeping, not the numbers."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import hscc_core
from hscc_mri.calibration import calibration_batches
from hscc_mri.cli import main
from hscc_mri.figures import pareto_figure
from hscc_mri.peers import AGREEMENT_BAR, PeerBench, bench_peers, join_evaluation, pareto_front
from hscc_mri.resolve import save_model_with_report
from hscc_mri.runtimes import available, cpu_summary, runtime_label
from models import ModelSpec, build_model
from preprocessing.phantoms import phantom_sample

BATCHES = (1, 4)
PNG = b"\x89PNG\r\n\x1a\n"


class Tiny(nn.Module):
    """A features/avgpool/classifier CNN (the layout HSCC refits), 1 x 32 x 32 input."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    model = Tiny().eval()
    model.spec = ModelSpec(name="tiny", input_size=(32, 32), channels=1)
    return model


#: What `hscc-mri evaluate --data DIR --json FILE` writes (the fields the join reads).
EVALUATION = {"rows": [
    {"name": "uncompressed", "accuracy": 0.90, "accuracy_se": 0.01, "agreement": 1.0, "agreement_se": 0.0},
    {"name": "uncompressed", "runtime": "onnxruntime", "precision": "int8", "accuracy": 0.85,
     "accuracy_se": 0.01, "agreement": 0.97, "agreement_se": 0.005},
    {"name": "uncompressed", "runtime": "openvino", "precision": "fp32", "accuracy": 0.90,
     "accuracy_se": 0.01, "agreement": 0.995, "agreement_se": 0.002},
    {"name": "hscc 3x", "accuracy": 0.88, "accuracy_se": 0.012, "agreement": 0.95, "agreement_se": 0.01},
]}


@pytest.fixture(scope="module")
def tiny_pair():
    dense = _tiny()
    batches = [torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    compressed, _ = hscc_core.compress(dense, batches, hscc_core.CompressionConfig(method="hscc", budget=3.0),
                                       progress=False)
    return dense, compressed


@pytest.fixture(scope="module")
def bench(tiny_pair) -> PeerBench:
    dense, compressed = tiny_pair
    before = torch.get_num_threads()
    # calibration=None: int8 draws the default calibration set (samples + phantoms for "tiny").
    result = bench_peers({"dense": dense, "compressed": compressed}, [*available(), ("torch", "int8")],
                         batch_sizes=BATCHES, runs=2, warmup=1, threads=1, evaluation=EVALUATION,
                         evaluation_names={"compressed": "hscc 3x"}, progress=False)
    assert torch.get_num_threads() == before
    return result


def test_every_available_choice_is_timed_for_every_model(bench):
    for model in ("dense", "compressed"):
        got = [(v.runtime, v.precision) for v in bench.variants if v.model == model]
        assert got == available()
    for v in bench.variants:
        assert v.label == runtime_label(v.runtime, v.precision) and v.dense == (v.model == "dense")
        assert sorted(v.latency) == list(BATCHES)
        for n, s in v.latency.items():
            assert s.batch == n and s.runs == 2 and 0 < s.median_ms <= s.p90_ms
    for row in bench.rows():
        assert set(row["latency"]) == set(row["speedup_vs_dense_fp32"]) == set(row["efficiency"]) == {"1", "4"}
        assert all(row["speedup_vs_dense_fp32"][k] > 0 for k in ("1", "4"))
    int8 = [v for v in bench.variants if v.precision == "int8"]
    assert int8 and all(v.details.get("fp32_layers") == [] for v in int8)


def test_a_choice_this_machine_cannot_run_is_skipped_with_its_reason(bench):
    skipped = {(s.model, s.runtime, s.precision): s.reason for s in bench.skipped}
    assert set(skipped) == {("dense", "torch", "int8"), ("compressed", "torch", "int8")}
    assert all("int8" in reason for reason in skipped.values())
    assert any("skipped dense PyTorch INT8" in line for line in bench.table().splitlines())


def test_speed_ups_are_relative_to_dense_pytorch_fp32_and_the_fastest_dense_peer(bench, tiny_pair):
    base = bench.baseline
    assert (base.model, base.runtime, base.precision) == ("dense", "torch", "fp32")
    rows = {(r["model"], r["runtime"], r["precision"]): r for r in bench.rows()}
    own = rows[("dense", "torch", "fp32")]
    assert own["speedup_vs_dense_fp32"] == {"1": 1.0, "4": 1.0} and own["efficiency"] == {"1": 1.0, "4": 1.0}
    assert own["flops"] == hscc_core.count_flops(tiny_pair[0], (1, 1, 32, 32))
    assert own["params"] == hscc_core.count_params(tiny_pair[0])
    compressed = rows[("compressed", "torch", "fp32")]
    assert compressed["flops_ratio"] == pytest.approx(3.0, rel=0.05)
    for n in ("1", "4"):
        fastest = bench.fastest_dense(int(n))
        assert fastest.dense
        assert rows[(fastest.model, fastest.runtime, fastest.precision)]["speedup_vs_fastest_dense"][n] == 1.0
        assert all(r["speedup_vs_fastest_dense"][n] <= 1.0 for r in rows.values() if r["dense"])
        assert compressed["efficiency"][n] == pytest.approx(compressed["speedup_vs_dense_fp32"][n] / 3.0, rel=0.05)


def test_the_evaluation_is_joined_by_name_runtime_and_precision(bench):
    rows = {(r["model"], r["runtime"], r["precision"]): r for r in bench.rows()}
    assert rows[("dense", "torch", "fp32")]["accuracy"] == 0.90  # "uncompressed" without runtime: PyTorch fp32
    assert rows[("dense", "onnxruntime", "int8")]["agreement"] == 0.97
    assert rows[("dense", "onnxruntime", "fp32")]["accuracy"] is None  # no such row
    assert rows[("compressed", "torch", "fp32")]["evaluation_row"] == "hscc 3x"  # via evaluation_names
    assert rows[("compressed", "torch", "fp32")]["accuracy_se"] == 0.012
    assert rows[("compressed", "openvino", "fp32")]["accuracy"] is None
    # Faithful dense peers: PyTorch fp32 (the reference) and OpenVINO fp32 (99.5%), not ORT int8 (97%).
    for n in BATCHES:
        faithful = bench.fastest_dense(n, faithful=True)
        assert (faithful.runtime, faithful.precision) in {("torch", "fp32"), ("openvino", "fp32")}
        candidates = [v for v in bench.variants if v.dense and (v.runtime, v.precision) in
                      {("torch", "fp32"), ("openvino", "fp32")}]
        assert faithful.latency[n].median_ms == min(v.latency[n].median_ms for v in candidates)
        compressed = next(v for v in bench.variants if v.key == ("compressed", "torch", "fp32"))
        r = rows[compressed.key]["speedup_vs_fastest_faithful_dense"][str(n)]
        assert r == pytest.approx(bench.speedup(compressed, n, faithful))
    assert bench.to_dict()["agreement_bar"] == AGREEMENT_BAR


def test_join_evaluation_matches_simply():
    rows = [{"name": "uncompressed", "accuracy": 0.9}, {"name": "hscc 6x", "accuracy": 0.8},
            {"name": "hscc 6x", "runtime": "openvino", "precision": "int8", "accuracy": 0.7}]
    assert join_evaluation("vgg16-brain-mri", "torch", "fp32", rows, reference=True)["accuracy"] == 0.9
    assert join_evaluation("vgg16-brain-mri", "torch", "fp32", rows) is None  # not the reference: own name only
    assert join_evaluation("a", "openvino", "int8", rows, row_name="hscc 6x")["accuracy"] == 0.7
    assert join_evaluation("a", "openvino", "fp32", rows, row_name="hscc 6x") is None
    assert join_evaluation("hscc 6x", "torch", "fp32", rows) == {
        "accuracy": 0.8, "accuracy_se": None, "agreement": None, "agreement_se": None, "row": "hscc 6x"}
    # evaluate --runtimes names its rows "hscc 6x [openvino int8]" and records the base row
    added = [{"name": "hscc 6x [openvino int8]", "runtime": "openvino", "precision": "int8", "accuracy": 0.6,
              "source": {"base_row": "hscc 6x"}}]
    assert join_evaluation("a", "openvino", "int8", added, row_name="hscc 6x")["accuracy"] == 0.6


def test_to_dict_is_strict_json_and_the_table_names_every_variant(bench):
    text = json.dumps(bench.to_dict(), allow_nan=False)
    back = json.loads(text)
    assert len(back["rows"]) == len(bench.variants) and back["threads"] == 1 and back["cpu"] == cpu_summary()
    table = bench.table()
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["model", "runtime/precision"] and "ms@b4" in lines[0]
    for v in bench.variants:
        assert any(line.startswith(v.model) and v.label in line for line in lines[1:])
    assert "90.0% +/- 1.0%" in table
    assert f"torch {torch.__version__}, 1 thread(s), 2 round-robin runs" in table and cpu_summary() in table
    assert "fastest dense peer with >= 99% agreement" in table


def test_bench_peers_adds_the_baseline_and_rejects_mismatched_inputs(tiny_pair):
    dense, _ = tiny_pair
    res = bench_peers({"dense": dense}, [("onnxruntime", "fp32")], batch_sizes=(2,), runs=1, warmup=0,
                      progress=False)
    assert [(v.runtime, v.precision) for v in res.variants] == [("torch", "fp32"), ("onnxruntime", "fp32")]
    assert res.table().splitlines()[0].count("ms@b2") == 1 and not res.has_evaluation
    other = _tiny()
    other.spec = ModelSpec(name="tiny", input_size=(16, 16), channels=1)
    with pytest.raises(ValueError, match="different inputs"):
        bench_peers({"dense": dense, "small": other}, [("torch", "fp32")], progress=False)
    with pytest.raises(ValueError, match="runtime"):
        bench_peers({"dense": dense}, [("tensorrt", "fp32")], progress=False)


def test_pareto_front_keeps_the_points_nothing_beats():
    points = [(10.0, 0.90), (5.0, 0.85), (20.0, 0.95), (12.0, 0.88), (5.0, 0.80), (30.0, 0.95),
              (float("nan"), 0.99), (8.0, None)]
    assert pareto_front(points) == [1, 0, 2]  # by latency; 3 is beaten by 0, 4 by 1, 5 by 2
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [0, 1]  # ties both stay
    assert pareto_front([]) == []


def test_pareto_figure_writes_a_png(bench, tmp_path):
    path = pareto_figure(bench.rows(), tmp_path / "plots" / "pareto.png", "tiny peers")
    data = path.read_bytes()
    assert path == tmp_path / "plots" / "pareto.png" and data.startswith(PNG) and len(data) > 1000
    with pytest.raises(ValueError, match="accuracy"):
        pareto_figure([{**r, "accuracy": None} for r in bench.rows()], tmp_path / "none.png")


# ----------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def alexnet_artifact(tmp_path_factory):
    """A registry AlexNet compressed by Global SVD on its conv layers (seconds), saved as
    the CLI loads artifacts."""
    torch.manual_seed(0)
    model = build_model("alexnet", pretrained=False)
    compressed, report = hscc_core.compress(
        model, None, hscc_core.CompressionConfig(method="svd", budget=2.0, include=("features.*",)), progress=False)
    path, _ = save_model_with_report(compressed, tmp_path_factory.mktemp("peers") / "alexnet-svd-2x.safetensors",
                                     report.to_dict())
    return path


def test_cli_bench_peers_prints_json_joins_the_evaluation_and_plots(alexnet_artifact, tmp_path, capsys):
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(json.dumps({"rows": [
        {"name": "uncompressed", "accuracy": 0.9, "accuracy_se": 0.01, "agreement": 1.0, "agreement_se": 0.0},
        {"name": "svd 2x", "accuracy": 0.8, "accuracy_se": 0.02, "agreement": 0.9, "agreement_se": 0.02}]}))
    plot = tmp_path / "pareto.png"
    status = main(["bench", "--model", "alexnet", "--vs", str(alexnet_artifact), "--peers",
                   "--choices", "torch:fp32", "onnxruntime:fp32", "torch:int8",
                   "--batch-sizes", "1", "--runs", "2", "--warmup", "0", "--threads", "1",
                   "--evaluation", str(evaluation), "--evaluation-name", "alexnet-svd-2x=svd 2x",
                   "--plot", str(plot), "--json"])
    out = capsys.readouterr()
    assert status == 0, out.err
    result = json.loads(out.out)
    got = [(r["model"], r["runtime"], r["precision"]) for r in result["rows"]]
    assert got == [("alexnet", "torch", "fp32"), ("alexnet", "onnxruntime", "fp32"),
                   ("alexnet-svd-2x", "torch", "fp32"), ("alexnet-svd-2x", "onnxruntime", "fp32")]
    assert len(result["skipped"]) == 2 and all(s["reason"] for s in result["skipped"])
    rows = {(r["model"], r["runtime"]): r for r in result["rows"]}
    assert rows[("alexnet", "torch")]["speedup_vs_dense_fp32"] == {"1": 1.0}
    assert rows[("alexnet", "torch")]["accuracy"] == 0.9 and rows[("alexnet-svd-2x", "torch")]["accuracy"] == 0.8
    assert rows[("alexnet-svd-2x", "onnxruntime")]["accuracy"] is None
    assert math.isclose(rows[("alexnet-svd-2x", "torch")]["flops_ratio"], 2.0, rel_tol=0.05)
    assert plot.read_bytes().startswith(PNG)


def test_cli_bench_checks_its_modes(alexnet_artifact, capsys):
    assert main(["bench", "--model", "alexnet", "--vs", str(alexnet_artifact), str(alexnet_artifact)]) == 2
    assert "exactly one --vs" in capsys.readouterr().err
    assert main(["bench", "--model", "alexnet", "--vs", str(alexnet_artifact), "--plot", "x.png"]) == 2
    assert "--plot needs --peers" in capsys.readouterr().err
    assert main(["bench", "--model", "alexnet", "--peers", "--plot", "x.png"]) == 2
    assert "--evaluation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--model", "alexnet", "--peers", "--choices", "openvino:fp16"])


@pytest.mark.e2e  # quantises with NNCF and benches every choice: over a minute on 2 cores
def test_cli_bench_peers_runs_int8_as_deployed_and_reuses_the_kept_quantised_graph(alexnet_artifact, tmp_path,
                                                                                   capsys):
    """An artifact's int8 variant goes through deploy: its plan (kept beside it) decides
    the float32 layers, the quantised graph is kept, and a second bench compiles the kept
    graph instead of quantising again; the dense model's --keep-fp32 still applies."""
    import shutil

    from hscc_mri import deploy
    from hscc_mri.resolve import load_model

    artifact = tmp_path / alexnet_artifact.name
    shutil.copy(alexnet_artifact, artifact)
    model = load_model(str(artifact))
    phantoms = torch.cat(calibration_batches([phantom_sample(i, seed=5)[0] for i in range(16)], model.spec,
                                             batch_size=16))
    plan = deploy.int8_plan(model, "openvino", artifact, calibration=[phantoms], progress=False,
                            log=lambda _m: None)
    argv = ["bench", "--model", "alexnet", "--vs", str(artifact), "--peers", "--choices", "torch:fp32",
            "openvino:int8", "--keep-fp32", "alexnet=classifier.6", "--batch-sizes", "1", "--runs", "1",
            "--warmup", "0", "--threads", "1", "--cache-dir", str(tmp_path), "--json"]
    details = []
    for _ in range(2):
        assert main(argv) == 0
        rows = {(r["model"], r["precision"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
        details.append(rows[("alexnet-svd-2x", "int8")]["details"])
        assert rows[("alexnet", "int8")]["details"]["fp32_layers"] == ["classifier.6"]
    assert details[0]["plan"]["keep_fp32"] == plan["keep_fp32"] == details[0]["fp32_layers"]
    assert details[0]["quantized_graph"]["reused"] is False and details[1]["quantized_graph"]["reused"] is True
    assert (tmp_path / details[1]["quantized_graph"]["file"]).is_file()
