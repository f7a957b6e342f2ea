"""The README is a front page whose numbers come from committed JSON, never typed by hand.

The headline tables between ``<!-- results:NAME -->`` markers are rendered here from the
committed evaluation and benchmark files and must be exactly what ``README.md`` holds;
outside those tables the README states no measurement (no number at all, except names such as
the budgets ``3x``/``6x``, and what sits in code). ``HSCC_UPDATE_README=1`` rewrites the
tables from the JSON (then review the diff).
"""
from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EVALUATION = "reports/real/evaluate-testing.json"
RUNTIMES = "reports/real/evaluate-runtimes-testing.json"
BENCH = "reports/real/bench-peers.json"
FRESH = "reports/fresh-clone.json"
THROUGHPUT = "reports/real/predict-throughput.json"
MAX_LINES = 150
#: Numbers the README may state in prose: they name things, they measure nothing.
_NOT_MEASUREMENTS = {"3x", "6x",  # the compression budgets
                     "3.11"}       # the Python version the setup needs

_METHODS = {"hscc": "HSCC", "svd": "Global SVD", "tucker": "Tucker-2"}
_RUNTIMES = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
#: (dense?, runtime, precision) of the rows the front page shows, in order.
_SHOWN = [(True, "torch", "fp32"), (True, "openvino", "int8"),
          (False, "torch", "fp32"), (False, "openvino", "fp32"), (False, "openvino", "int8")]


def _load(rel: str) -> dict[str, Any]:
    return json.loads((ROOT / rel).read_text())


def _pct(v: float, se: float | None = None) -> str:
    return f"{100 * v:.1f}" + (f" ± {100 * se:.1f}" if se is not None else "")


def _model_name(name: str) -> str:
    """``uncompressed`` / ``vgg16-brain-mri`` -> ``VGG16 (uncompressed)``; ``hscc 6x`` or
    ``vgg16-brain-mri-hscc-6x-537fdf6c32`` -> ``VGG16 HSCC 6x``."""
    m = re.search(r"(hscc|svd|tucker)[ -](\d+)x", name)
    return f"VGG16 {_METHODS[m.group(1)]} {m.group(2)}x" if m else "VGG16 (uncompressed)"


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=90, break_long_words=False, break_on_hyphens=False)


def _links(rels: tuple[str, ...]) -> str:
    """The committed files a block is rendered from, as README links."""
    return " and ".join(f"[`{rel}`]({rel})" for rel in rels)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" :--- "] + [" ---: "] * (len(header) - 1)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def runtimes_block() -> str:
    """The shipped models: speed from the peer bench, quality from the runtime evaluation."""
    bench, ev = _load(BENCH), _load(RUNTIMES)
    rows_ev = {r["name"]: r for r in ev["rows"]}
    base = next(r for r in bench["rows"] if r["dense"] and (r["runtime"], r["precision"]) == ("torch", "fp32"))
    ms = lambda r: r["latency"]["1"]["median_ms"]  # noqa: E731
    out = []
    for dense, runtime, precision in _SHOWN:
        row = next(r for r in bench["rows"] if r["dense"] == dense and (r["runtime"], r["precision"]) == (runtime, precision))
        same = next(r for r in bench["rows"] if r["dense"] and (r["runtime"], r["precision"]) == (runtime, precision))
        name = row["evaluation_row"] + ("" if (runtime, precision) == ("torch", "fp32") else f" [{runtime} {precision}]")
        e = rows_ev[name]
        out.append([_model_name(row["model"]), f"{_RUNTIMES[runtime]} {precision}", f"{row['gflops']:.2f}",
                    f"{ms(row):.0f}", f"{ms(base) / ms(row):.1f}x", f"{ms(same) / ms(row):.1f}x",
                    _pct(e["accuracy"], e["accuracy_se"]), _pct(e["agreement"], e["agreement_se"])])
    test = ev["test_set"]
    caption = (f"The app's models on the {test['n']} real test scans of `{test['split']}/` (read once, at the end), "
               f"batch 1 on {bench['threads']} CPU threads ({bench['cpu']}); speed-up over the uncompressed model "
               f"in PyTorch fp32, and over it in the same runtime (the pair the app shows); ± is the bootstrap SE; "
               f"agreement is with the uncompressed model in PyTorch fp32. "
               f"From [`{RUNTIMES}`]({RUNTIMES}) and [`{BENCH}`]({BENCH}):")
    header = ["model", "runtime", "GFLOPs", "latency ms", "speed-up", "speed-up, same runtime", "accuracy %",
              "agreement %"]
    return _wrap(caption) + "\n\n" + _table(header, out)


def methods_block() -> str:
    """The compression methods at the same FLOPs budgets, no fine-tuning, PyTorch fp32."""
    ev = _load(EVALUATION)
    out = [[_model_name(r["name"]), f"{r['gflops']:.2f}", _pct(r["accuracy"], r["accuracy_se"]),
            _pct(r["macro_f1"], r["macro_f1_se"]), _pct(r["agreement"], r["agreement_se"]),
            _pct(r["agreement_confident"])] for r in ev["rows"]]
    test = ev["test_set"]
    caption = (f"HSCC against the weights-only baselines at the same FLOPs budgets on the same {test['n']} scans "
               f"(no fine-tuning; from [`{EVALUATION}`]({EVALUATION})):")
    header = ["model", "GFLOPs", "accuracy %", "macro-F1 %", "agreement %",
              f"agreement where the original is ≥ {ev['confident_threshold']} sure %"]
    return _wrap(caption) + "\n\n" + _table(header, out)


def fresh_clone_block() -> str:
    """How long a fresh clone takes to serve the page and to pass CI, as measured."""
    m = _load(FRESH)
    page, ci = m["time_to_page"], m["ci"]
    text = (f"Measured from a fresh clone ({m['date']}, {m['machine']}; [`{FRESH}`]({FRESH})): with the "
            f"venv set up, the page is served {page['seconds_auto']:g} s after the app starts "
            f"({page['auto_runtime']}; {page['seconds_int8']:g} s in int8), nothing built or quantised; "
            f"`.ci/run` took {ci['seconds'] / 60:.1f} min with the install ({ci['passed']} tests passed, "
            f"{ci['failed']} failed; {ci['load']}).")
    landing = m.get("ci_landing")
    if landing:
        text += (f" On landing ({landing['date']}, commit {landing['commit']}) the project's CI ran `.ci/run` on a "
                 f"clean checkout in {landing['seconds'] / 60:.1f} min ({landing['result']}).")
    fast = m.get("fast_tier")
    if fast:
        text += (f" The fast tier (`-m \"not e2e\"`) took {fast['seconds'] / 60:.1f} min on an idle machine "
                 f"({fast['date']}, {fast['passed']} passed, {fast['failed']} failed).")
    tp = _load(THROUGHPUT)
    text += (f" `predict` on the {tp['native']['files']} JPEGs of `Testing/` with the shipped 6x in int8 "
             f"([`{THROUGHPUT}`]({THROUGHPUT}), {tp['date']}): {tp['native']['scans_per_s']:g} scans/s "
             f"({tp['onednn_capped_avx2']['scans_per_s']:g} with oneDNN capped at AVX2; target "
             f"{tp['target_scans_per_s']:g}).")
    return _wrap(text)


SAFETY = ("reports/real/safety-net-report-6x.json", "reports/real/safety-net-report-3x.json")


def safety_net_block() -> str:
    """The shipped safety net on the report half: who answered, agreement, accuracy, latency."""
    reports = [_load(rel) for rel in SAFETY]
    first = reports[0]
    caption = (f"The safety net on the {first['data']['n']} scans of the report half of `Testing/` (thresholds "
               f"chosen on the select half and shipped in `release/manifest.json`; both models in "
               f"{first['release']['runtime']} {first['release']['precision']} on {first['cpu']}; batch-1 latency "
               f"is the mean over scans (median of {len(first['latency']['rounds']['net_batch1_ms'])} rounds), the reference's pass "
               f"added for a scan handed over; ± is the binomial "
               f"SE). From " + _links(SAFETY) + ":")
    rows = []
    for r in reports:
        lat = r["latency"]["batch1_mean_ms"]
        rule = r["release"]["rule"]
        rows.append([f"`{r['release']['model'].split('@')[0]}`", f"{rule['measure']} < {rule['threshold']:.4f}",
                     _pct(r["handed_over"]["value"], r["handed_over"]["se"]),
                     _pct(r["effective_agreement"]["value"], r["effective_agreement"]["se"]),
                     _pct(r["compressed_alone_agreement"]["value"], r["compressed_alone_agreement"]["se"]),
                     _pct(r["accuracy"]["net"]["value"], r["accuracy"]["net"]["se"]),
                     _pct(r["accuracy"]["reference"]["value"], r["accuracy"]["reference"]["se"]),
                     f"{lat['net']:.0f} vs {lat['dense']:.0f}", f"{lat['dense'] / lat['net']:.2f}x"])
    header = ["compressed model", "handed over when", "handed over %", "agreement of the answers returned %",
              "agreement alone %", "accuracy with the net %", "reference accuracy %", "latency ms (net vs dense)",
              "faster"]
    return _wrap(caption) + "\n\n" + _table(header, rows)


FIDELITY = ("reports/real/fidelity-report-6x.json", "reports/real/fidelity-report-3x.json")


def fidelity_block() -> str:
    """The shipped compressed models alone against their fidelity targets on the report
    half, as ``evaluate --target-agreement ... --json`` wrote them."""
    results = [_load(rel) for rel in FIDELITY]
    caption = (f"Each shipped compressed model alone against its fidelity targets, on the "
               f"{results[0]['test_set']['n']} scans of the report half of `Testing/` (never used for a choice; "
               f"PyTorch fp32; ± is the bootstrap SE, the accuracy drop paired): the output of "
               f"`hscc-mri evaluate --data <report half> --target-agreement ... --json`, in {_links(FIDELITY)}:")
    rows = []
    for result in results:
        verdicts = result["fidelity_targets"]
        for name, v in verdicts["rows"].items():
            a, c, d = v["agreement"], v.get("confident_agreement"), v["accuracy_drop"]
            row = next(r for r in result["rows"] if r["name"] == name)
            confident = (f"{_pct(c['measured'], c['se'])} (≥ {100 * c['target']:g})" if c else
                         f"{_pct(row['agreement_confident'], row['agreement_confident_se'])} (none set)")
            rows.append([_model_name(name), f"{_pct(a['measured'], a['se'])} (≥ {100 * a['target']:g})", confident,
                         f"{d['measured']:.1f} ± {d['se']:.1f} (≤ {d['target']:g})",
                         "met" if v["met"] else "missed"])
    header = ["model", "agreement % (target)", "agreement where the original is ≥ 0.9 sure % (target)",
              "accuracy drop, points (target)", "targets"]
    return _wrap(caption) + "\n\n" + _table(header, rows)


BLOCKS = {"start": fresh_clone_block, "fidelity": fidelity_block, "safety": safety_net_block,
          "runtimes": runtimes_block, "methods": methods_block}


def _block_re(key: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- results:{key} -->\n)(.*?)(\n<!-- /results:{key} -->)", re.S)


def _render(text: str) -> str:
    for key, render in BLOCKS.items():
        text = _block_re(key).sub(lambda m: m.group(1) + render() + m.group(3), text)
    return text


def test_headline_tables_are_rendered_from_the_committed_json() -> None:
    text = README.read_text()
    if os.environ.get("HSCC_UPDATE_README"):
        README.write_text(_render(text))
        text = README.read_text()
    for key, render in BLOCKS.items():
        block = _block_re(key).search(text)
        assert block, f"README.md lacks the results:{key} block"
        assert block.group(2) == render(), f"README.md results:{key} differs from the JSON (HSCC_UPDATE_README=1)"


def test_readme_states_no_number_outside_the_rendered_tables() -> None:
    text = README.read_text()
    for key in BLOCKS:
        text = _block_re(key).sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)                   # fenced code
    text = re.sub(r"^(    |\t).*$", "", text, flags=re.M)                # indented code (commands, diagram)
    text = re.sub(r"`[^`]*`", "", text)                                  # inline code
    text = re.sub(r"\]\([^)]*\)", "]", text)                             # link targets
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    numbers = re.findall(r"(?<![\w.-])\d[\d.,]*(?:x\b)?", text)
    stray = [n for n in numbers if n not in _NOT_MEASUREMENTS]
    assert not stray, f"numbers in README.md outside the rendered tables (put them in a docs page): {stray}"


def test_readme_is_a_front_page() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines (at most {MAX_LINES})"


def test_every_relative_link_resolves() -> None:
    """In the README and the topic pages: every relative link or image points at a file."""
    pages = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "reports").glob("measurements-*.md"))]
    broken = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, f"links to missing files: {broken}"
