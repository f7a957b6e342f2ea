"""Markdown tables of the report's results (plain dicts in, strings out)."""
from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["ablation_table", "environment_table", "main_table", "markdown_table", "pareto_table", "pct",
           "timing_table", "vgg_table"]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def pct(v: float | None, se: float | None = None, digits: int = 1) -> str:
    """``0.8765, 0.0071`` -> ``"87.7 ± 0.7"`` (percent)."""
    if not _finite(v):
        return "–"
    text = f"{100 * v:.{digits}f}"
    return text + (f" ± {100 * se:.{digits}f}" if _finite(se) else "")


def num(v: float | None, fmt: str = ".3f", suffix: str = "") -> str:
    return f"{v:{fmt}}{suffix}" if _finite(v) else "–"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one ``l``/``r`` per column (default: first left)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _cost_cells(r: dict[str, Any]) -> list[str]:
    return [num(r.get("gflops"), ".3f"), pct(r.get("flops_reduction")), num(r.get("params", float("nan")) / 1e6, ".2f"),
            num(r.get("latency_ms"), ".2f"), num(r.get("speedup"), ".2f", "x")]


def main_table(main: dict[str, Any]) -> str:
    """Main AlexNet table: cost and test-set quality (bootstrap SEs) of every row."""
    header = ["model", "GFLOPs", "FLOPs reduction %", "params (M)", "latency b1 (ms)", "speed-up", "accuracy %",
              "macro-F1 %", "meningioma F1 %", "agreement %"]
    rows = [[r["name"], *_cost_cells(r), pct(r["accuracy"], r["accuracy_se"]), pct(r["macro_f1"], r["macro_f1_se"]),
             pct(r.get("focus_f1"), r.get("focus_f1_se")), pct(r["agreement"], r["agreement_se"])]
            for r in main["rows"]]
    return markdown_table(header, rows)


def vgg_table(vgg: dict[str, Any]) -> str:
    """VGG16 table: cost, leave-one-scan-out fidelity on real scans, sample accuracy."""
    header = ["model", "GFLOPs", "FLOPs reduction %", "params (M)", "latency b1 (ms)", "speed-up",
              "held-out scans agree", "scans mean KL", "held-out views agree %", "views mean KL", "sample accuracy"]
    n = len(vgg["scans"])
    rows = [[r["name"], *_cost_cells(r), f"{r['scan_agreement_count']}/{n}", num(r["scan_mean_kl"], ".4f"),
             pct(r["views_agreement"]), num(r["views_mean_kl"], ".4f"), f"{r['sample_correct']}/{n}"]
            for r in vgg["rows"]]
    return markdown_table(header, rows)


def vgg_real_table(ev: dict[str, Any]) -> str:
    """VGG16 on the real test set (an imported ``evaluate`` result): cost and quality with SEs."""
    header = ["model", "GFLOPs", "FLOPs reduction %", "params (M)", "latency b1 (ms)", "speed-up", "accuracy %",
              "macro-F1 %", "meningioma F1 %", "agreement %", "mean KL"]
    rows = [[r["name"], *_cost_cells(r), pct(r["accuracy"], r["accuracy_se"]), pct(r["macro_f1"], r["macro_f1_se"]),
             pct(r.get("focus_f1"), r.get("focus_f1_se")), pct(r["agreement"], r["agreement_se"]),
             num(r["mean_kl"], ".3f")] for r in ev["rows"]]
    return markdown_table(header, rows)


def claims_table(claims: Sequence[dict[str, Any]]) -> str:
    """The paper's claims, one row per claim and variant, with the measured verdict."""
    header = ["the paper's claim (HSCC at the top budget)", "variant", "measured (HSCC − other, paired SE)", "verdict"]
    rows = []
    for c in claims:
        if c.get("metric") is None:
            verdict = "holds" if c["holds"] else "does not hold"
        elif c["claim"].startswith("keeps"):
            verdict = ("holds" if c["diff"] >= 0 else "does not hold") + (
                " (within one SE)" if c["verdict"] == "tied" else "")
        else:
            verdict = "holds (ahead by > 1 SE)" if c["holds"] else (
                "does not hold (within one SE)" if c["verdict"] == "tied" else "does not hold (behind by > 1 SE)")
        rows.append([c["claim"], c["variant"], c["measured"], verdict])
    return markdown_table(header, rows)


def _delta(comparisons: Sequence[dict[str, Any]], name: str, metric: str) -> str:
    c = next((c for c in comparisons if c["a"] == name), None)
    if c is None:
        return "–"
    d = c[metric]
    return f"{100 * d['diff']:+.1f} ({100 * d['se']:.1f})" if _finite(d["se"]) else f"{100 * d['diff']:+.1f}"


def ablation_table(abl: dict[str, Any]) -> str:
    """Ablation rows; unavailable configurations keep their row with the reason."""
    header = ["setting", "GFLOPs", "FLOPs reduction %", "params (M)", "latency b1 (ms)", "speed-up", "accuracy %",
              "macro-F1 %", "meningioma F1 %", "agreement %", "Δ accuracy vs default at its budget (SE)", "Δ macro-F1 vs default at its budget (SE)"]
    rows = []
    for r in abl["rows"]:
        if r["status"] != "ok":
            rows.append([r["name"], f"not available: {r['error']}"] + [""] * (len(header) - 2))
            continue
        name = r["name"] + (" (ref.)" if r["name"] == abl.get("reference") else "")
        rows.append([name, *_cost_cells(r), pct(r["accuracy"], r["accuracy_se"]), pct(r["macro_f1"], r["macro_f1_se"]),
                     pct(r.get("focus_f1"), r.get("focus_f1_se")), pct(r["agreement"], r["agreement_se"]),
                     _delta(abl["comparisons"], r["name"], "accuracy"),
                     _delta(abl["comparisons"], r["name"], "macro_f1")])
    return markdown_table(header, rows)


def pareto_table(pareto: dict[str, Any]) -> str:
    """Every sweep point (validation set), Pareto-optimal ones marked."""
    header = ["setting", "GFLOPs", "FLOPs reduction %", "val accuracy %", "val macro-F1 %", "agreement %",
              "Pareto-optimal"]
    rows = []
    for p in sorted(pareto["points"], key=lambda p: (p["status"] != "ok", p.get("gflops") or 0.0)):
        if p["status"] != "ok":
            rows.append([p["name"], f"not available: {p['error']}", "", "", "", "", ""])
            continue
        rows.append([p["name"] + (" **(recommended)**" if p["name"] == pareto.get("recommended") else ""),
                     num(p["gflops"], ".3f"), pct(p["flops_reduction"]), pct(p["accuracy"], p["accuracy_se"]),
                     pct(p["macro_f1"], p["macro_f1_se"]), pct(p["agreement"]), "yes" if p.get("pareto") else ""])
    return markdown_table(header, rows)


def timing_table(seconds: dict[str, float], total: float) -> str:
    rows = [[name, f"{s / 60:.1f}", f"{s:.0f}"] for name, s in seconds.items()]
    rows.append(["**total**", f"**{total / 60:.1f}**", f"**{total:.0f}**"])
    return markdown_table(["part", "minutes", "seconds"], rows)


def environment_table(env: dict[str, Any], settings: dict[str, Any]) -> str:
    pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    git = env.get("git") or {}
    load = env.get("load_average")
    rows = [
        ["command", f"`{env['command']}`"],
        ["seed", str(settings["seed"])],
        ["torch threads", str(env["torch_threads"])],
        ["CPU", f"{env['cpu']} ({env['cpus_usable']} usable of {env['cpu_count']} logical CPUs)"],
        ["load average at start (1/5/15 min)", " / ".join(f"{v:.1f}" for v in load) if load else "–"],
        ["Python / platform", f"{env['python']} / {env['platform']}"],
        ["packages", pk],
        ["git commit", f"{git.get('commit') or '–'}" + (" (uncommitted changes)" if git.get("dirty") else "")],
    ]
    return markdown_table(["", ""], rows, "ll")
