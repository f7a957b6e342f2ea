"""The evidence report (issue 4): ``hscc-mri report --quick`` end to end, the
``--data DIR`` variant on a tiny generated folder, and the numbers-to-words helpers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hscc_mri.report.analysis import ORIGINAL_KD, paired_difference, pareto_front, recommend, verdict
from hscc_mri.report.document import comparison_sentence
from hscc_mri.report.experiments import METHOD_NAMES
from hscc_mri.report.realscans import pick_scans, true_label
from hscc_mri.report.settings import quick_settings

from tests.paths import ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("confusion_alexnet.png", "per_class_alexnet.png", "pareto_alexnet.png")
MAIN_COLUMNS = ("gflops", "flops_reduction", "params", "latency_ms", "speedup", "accuracy", "accuracy_se", "macro_f1",
                "macro_f1_se", "focus_f1", "focus_f1_se", "agreement", "agreement_se", "confusion", "precision",
                "recall", "f1")


def run_report(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    return subprocess.run([sys.executable, "-m", "hscc_mri", "report", "--quick", "--no-progress", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def expected_main_rows(budgets) -> list[str]:
    names = ["original", ORIGINAL_KD]
    for method in ("svd", "tucker", "hscc"):
        for b in budgets:
            names += [f"{METHOD_NAMES[method]} {b:g}x", f"{METHOD_NAMES[method]} {b:g}x + KD"]
    return names


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    proc = run_report("--out", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, json.loads((out / "report.json").read_text()), (out / "REPORT.md").read_text()


@pytest.mark.e2e
def test_quick_report_writes_the_report_json_and_png_figures(quick_report):
    out, _, _ = quick_report
    for name in FIGURES:
        data = (out / "figures" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000, name
    layer_pngs = list((out / "figures" / "layers").rglob("*.png"))
    assert layer_pngs and all(p.read_bytes().startswith(PNG_MAGIC) for p in layer_pngs)


@pytest.mark.e2e
def test_quick_report_json_has_every_table_row(quick_report):
    _, rep, _ = quick_report
    s = quick_settings()
    main = rep["alexnet"]["main"]
    assert [r["name"] for r in main["rows"]] == expected_main_rows(s.budgets)
    for r in main["rows"]:
        missing = [c for c in MAIN_COLUMNS if c not in r]
        assert not missing, (r["name"], missing)
        assert 0.0 <= r["accuracy"] <= 1.0 and r["accuracy_se"] >= 0.0
    rows = {r["name"]: r for r in main["rows"]}
    for b in s.budgets:
        flops = {rows[f"{METHOD_NAMES[m]} {b:g}x"]["flops_ratio"] for m in ("svd", "tucker", "hscc")}
        assert all(abs(f / b - 1) < 0.05 for f in flops), (b, flops)  # same budget for every method
        assert rows[f"HSCC {b:g}x + KD"]["finetune"]["epochs_run"] >= 1
    # every HSCC-vs-baseline and HSCC-vs-original comparison, with paired SEs, and HSCC + KD
    # against the original given the same fine-tuning (the control)
    assert len(main["comparisons"]) == 3 * 2 * len(s.budgets) + len(s.budgets)
    assert {c["a"] for c in main["comparisons"] if c["b"] == ORIGINAL_KD} == {f"HSCC {b:g}x + KD" for b in s.budgets}
    assert rows[ORIGINAL_KD]["finetune"]["epochs_run"] >= 1 and rows[ORIGINAL_KD]["flops_reduction"] == 0
    assert all(c["accuracy"]["verdict"] in ("ahead", "tied", "behind") for c in main["comparisons"])

    vgg = rep["vgg"]["rows"]
    assert [r["name"] for r in vgg] == ["original"] + [f"{METHOD_NAMES[m]} {b:g}x" for m in ("svd", "tucker", "hscc")
                                                        for b in s.vgg_budgets]
    assert all({"scan_agreement", "views_agreement", "views_mean_kl", "sample_accuracy", "gflops"} <= set(r)
               for r in vgg)
    hscc = vgg[-1]
    assert len(hscc["folds"]) == s.vgg_scans  # leave-one-scan-out: one fold per scan

    ablation = rep["alexnet"]["ablation"]["rows"]
    labels = [label for label, _ in s.ablation]
    assert [r["name"] for r in ablation if r["name"] in labels] == labels
    for r in ablation:
        assert r["status"] in ("ok", "not available")
        assert r["status"] == "ok" or r["error"]
    # each row is compared with the default setting at its own budget (uniform allocation at both budgets)
    by_name = {r["name"]: r for r in ablation}
    comparisons = rep["alexnet"]["ablation"]["comparisons"]
    assert {by_name[c["a"]]["config"]["budget"] for c in comparisons if "uniform" in c["a"]} == set(s.budgets)
    for c in comparisons:
        ref = by_name[c["reference"]]["config"]
        assert c["b"] == c["reference"] and ref["budget"] == by_name[c["a"]]["config"]["budget"]
        assert ref["allocation"] == "greedy" and ref["regions"] == by_name[rep["alexnet"]["ablation"]["reference"]]["config"]["regions"]

    pareto = rep["alexnet"]["pareto"]
    assert len(pareto["points"]) == len(s.sweep)
    assert pareto["front"] and pareto["recommended"] in pareto["front"]

    assert rep["seconds_total"] > 0 and {"AlexNet main table", "VGG16 on real scans"} <= set(rep["seconds"])
    env = rep["environment"]
    assert env["packages"]["torch"] and env["cpu"] and env["torch_threads"] == s.threads


@pytest.mark.e2e
def test_quick_report_markdown_has_the_tables_and_computed_statements(quick_report):
    out, rep, md = quick_report
    for heading in ("## 1. AlexNet", "## 2. Pretrained VGG16 on the real test set", "## 2b. Pretrained VGG16 on the six",
                    "## 3. Ablation", "## 4. Pareto", "## Reproducibility"):
        assert heading in md
    # the real-test VGG16 section is the committed evaluate result, cited by its hash
    from hscc_mri.report.imported import load_vgg_evaluation
    from hscc_mri.report.tables import claims_table, vgg_real_table

    ev = load_vgg_evaluation(ROOT / "reports" / "real" / "evaluate-testing.json")
    assert rep["vgg_real"]["sha256"] == ev["sha256"] and vgg_real_table(ev) in md
    claims = rep_claims(md, rep)
    assert claims_table(claims) in md
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    for name in expected_main_rows(quick_settings().budgets):
        assert any(line.startswith(f"| {name} |") for line in table_lines), name
    for c in rep["alexnet"]["main"]["comparisons"]:
        assert comparison_sentence(c, "accuracy") in md
    assert f"**{rep['seconds_total'] / 60:.1f} min**" in md
    for link in ("figures/confusion_alexnet.png", "figures/per_class_alexnet.png", "figures/pareto_alexnet.png"):
        assert f"]({link})" in md and (out / link).is_file()


def rep_claims(md: str, rep: dict) -> list:
    """The paper-claims rows the report computed (from its own main table)."""
    from hscc_mri.report.document import _main_findings

    _, checks = _main_findings(rep["alexnet"]["main"], True)
    claims = checks["paper_claims"]
    assert any(c["b"] == ORIGINAL_KD for c in claims if "b" in c)
    assert {c["variant"] for c in claims} >= {"without fine-tuning", "with the same fine-tuning"}
    return claims


def _write_folder(root: Path, per_class: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for k, cls in enumerate(("glioma", "meningioma", "notumor", "pituitary")):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (96, 96)).astype(np.uint8)
                img[20:76, 20:76] += 80  # a "brain"
                img[24 + 12 * k:40 + 12 * k, 30:50] = 250  # a class-dependent bright blob
                Image.fromarray(img, mode="L").save(folder / f"{cls}_{i}.png")


@pytest.mark.e2e
def test_report_with_a_folder_data_set(tmp_path):
    root = tmp_path / "BrainMRI"
    _write_folder(root, {"Training": 6, "Testing": 3})
    out = tmp_path / "out"
    proc = run_report("--data", str(root), "--parts", "alexnet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    rep = json.loads((out / "report.json").read_text())
    assert rep["alexnet"]["data"]["source"] == str(root)
    assert rep["alexnet"]["data"]["test"] == 12
    assert [r["name"] for r in rep["alexnet"]["main"]["rows"]] == expected_main_rows(quick_settings().budgets)
    assert "vgg" not in rep and "ablation" not in rep["alexnet"]
    md = (out / "REPORT.md").read_text()
    assert f"the folder data set `{root}`" in md
    assert "near-duplicate slice of the same patient" in md  # the real-data caveat
    # the phantom AlexNet stays, as the labelled synthetic benchmark imported from its report
    assert rep["phantoms"]["data"]["source"] == "phantoms"
    assert "## 5. Synthetic benchmark: the AlexNet trained on phantoms" in md


def test_report_rejects_a_missing_data_folder(tmp_path):
    proc = run_report("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2 and "neither 'phantoms' nor a folder" in proc.stderr


# ----------------------------------------------------------------------------- helpers
def test_pareto_front_keeps_only_undominated_points():
    pts = [{"gflops": 1.0, "accuracy": 0.80}, {"gflops": 2.0, "accuracy": 0.85}, {"gflops": 2.0, "accuracy": 0.83},
           {"gflops": 3.0, "accuracy": 0.84}, {"gflops": 0.5, "accuracy": 0.70}]
    assert pareto_front(pts) == [4, 0, 1]


def test_recommend_takes_the_simplest_setting_within_one_se_of_the_best():
    def p(g, acc, regions, clusters, red):
        return {"gflops": g, "accuracy": acc, "accuracy_se": 0.01, "regions": regions, "clusters": clusters,
                "flops_reduction": red}

    pts = [p(0.08, 0.80, (1, 1), 1, 0.83), p(0.09, 0.805, (2, 2), 4, 0.81), p(0.20, 0.90, (1, 1), 1, 0.60)]
    rec = recommend(pts, min_reduction=0.8)
    assert rec["front"] == [0, 1, 2] and rec["candidates"] == [0, 1]
    assert rec["best"] == 1 and rec["index"] == 0 and not rec["fallback"]
    assert recommend(pts, min_reduction=0.99)["fallback"]


def test_paired_difference_and_verdicts():
    y = np.array([0, 1, 2, 3] * 25)
    a = y.copy()
    b = y.copy()
    b[:30] = (b[:30] + 1) % 4
    d = paired_difference(y, a, b, 4, n_boot=200, seed=0, focus_class=1)
    assert d["accuracy"]["diff"] == pytest.approx(0.30)
    assert 0 < d["accuracy"]["se"] < 0.1 and d["macro_f1"]["diff"] > 0
    assert verdict(d["accuracy"]["diff"], d["accuracy"]["se"]) == "ahead"
    assert verdict(-0.01, 0.02) == "tied" and verdict(-0.05, 0.02) == "behind"
    sentence = comparison_sentence({"a": "HSCC 6x", "b": "Global SVD 6x", **{k: {**v, "verdict": verdict(**v)}
                                                                             for k, v in d.items()}}, "accuracy")
    assert sentence.startswith("HSCC 6x beats Global SVD 6x on accuracy by 30.0 points (SE ")


def test_sample_scan_labels_and_picking():
    assert true_label("Te-me_0016.jpg") == "meningioma" and true_label("x.jpg") is None
    scans = [Path(n) for n in ("Te-gl_1.jpg", "Te-gl_2.jpg", "Te-me_1.jpg", "Te-no_1.jpg")]
    assert {true_label(p) for p in pick_scans(scans, 3)} == {"glioma", "meningioma", "notumor"}


def test_report_md_tables_are_what_the_committed_report_renders() -> None:
    """The report's numbers are never typed by hand: the headline tables of ``reports/REPORT.md``
    (which docs/evaluation-and-data.md summarises) are exactly what ``reports/report.json``
    renders to. The README's own tables are checked in tests/test_readme.py."""
    import json
    from pathlib import Path

    from hscc_mri.report.tables import claims_table, main_table, vgg_real_table, vgg_table

    root = Path(__file__).resolve().parents[2]
    data = json.loads((root / "reports" / "report.json").read_text())
    report_md = (root / "reports" / "REPORT.md").read_text()
    assert data["alexnet"]["data"]["source"] != "phantoms"  # the headline is the real-data report
    from hscc_mri.report.document import _main_findings

    claims = claims_table(_main_findings(data["alexnet"]["main"], False)[1]["paper_claims"])
    for key, table in (("alexnet", main_table(data["alexnet"]["main"])), ("vgg", vgg_table(data["vgg"])),
                       ("vgg-real", vgg_real_table(data["vgg_real"])), ("claims", claims)):
        assert table.strip() in report_md, f"REPORT.md {key} table differs from reports/report.json"


def test_timing_caveat_discounts_the_reports_own_threads() -> None:
    from hscc_mri.report.document import _busy

    quiet = {"cpus_usable": 2, "torch_threads": 2, "load_average": [0.3, 0.2, 0.1], "load_average_end": [2.2, 2.0, 1.5]}
    assert _busy(quiet) is None  # the end load is the report itself
    shared = {**quiet, "load_average_end": [4.5, 4.0, 3.0]}
    assert "busy with other work" in _busy(shared)
    assert "busy with other work" in _busy({**quiet, "load_average": [3.0, 2.0, 1.0]})
