"""REPORT.md: the tables, the figures and sentences computed from the numbers.

No sentence here states a winner on its own authority: every "beats", "ties" or "does
not beat" comes from a paired bootstrap comparison in the results (see
:mod:`hscc_core.report.analysis`).
"""
from __future__ import annotations

from typing import Any, Sequence

from ..batch_augment import AFFINE_DESCRIPTION
from . import tables
from .analysis import ORIGINAL_KD, PAPER_FLOPS_REDUCTION

__all__ = ["render"]

_METRICS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "focus_f1": "meningioma F1"}


def _points(v: float) -> str:
    return f"{100 * abs(v):.1f} point{'s' if round(100 * abs(v), 1) != 1.0 else ''}"


def comparison_sentence(c: dict[str, Any], metric: str) -> str:
    """``"HSCC 6x beats Global SVD 6x on accuracy by 3.1 points (SE 0.8)"``-style sentence."""
    d, name = c[metric], _METRICS[metric]
    se = f"SE {100 * d['se']:.1f}"
    if round(100 * abs(d["diff"]), 1) == 0.0:
        return f"{c['a']} and {c['b']} are level on {name} ({100 * d['diff']:+.1f} points, {se})"
    if d["verdict"] == "ahead":
        return f"{c['a']} beats {c['b']} on {name} by {_points(d['diff'])} ({se})"
    if d["verdict"] == "behind":
        return f"{c['a']} does not beat {c['b']} on {name}: it is {_points(d['diff'])} lower ({se})"
    if d["diff"] > 0:
        return (f"{c['a']} does not clearly beat {c['b']} on {name}: ahead by {_points(d['diff'])}, "
                f"within one SE ({se})")
    return f"{c['a']} does not beat {c['b']} on {name}: {_points(d['diff'])} lower, within one SE ({se})"


def _rows_by_name(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in rows}


def _main_findings(main: dict[str, Any], quick: bool) -> tuple[list[str], dict[str, Any]]:
    """Bullet sentences about the main table, and the acceptance checks of issue 4."""
    rows = _rows_by_name(main["rows"])
    lines = []
    for c in main["comparisons"]:
        lines.append("; ".join(comparison_sentence(c, m) for m in _METRICS if m in c) + ".")
    budgets = sorted({r["budget"] for r in main["rows"] if r["method"] == "hscc"})
    top = budgets[-1]
    checks: dict[str, Any] = {"budget": top}
    hscc_top = rows[f"HSCC {top:g}x"]
    checks["flops_reduction"] = hscc_top["flops_reduction"]
    checks["flops_ok"] = hscc_top["flops_reduction"] >= PAPER_FLOPS_REDUCTION - 1e-9
    acc = {}
    for ft in (False, True):
        c = next(c for c in main["comparisons"] if c["a"] == f"HSCC {top:g}x" + (" + KD" if ft else "")
                 and c["b"] == "original")
        acc["KD" if ft else "plain"] = c["accuracy"]
    checks["accuracy_vs_original"] = acc
    checks["accuracy_ok"] = any(d["diff"] >= 0 for d in acc.values())
    control = next((c for c in main["comparisons"] if c["a"] == f"HSCC {top:g}x + KD" and c["b"] == ORIGINAL_KD), None)
    if control is not None:
        checks["vs_tuned_original"] = {m: control[m] for m in _METRICS if m in control}
    wins = [c for c in main["comparisons"] if c["b"] not in ("original", ORIGINAL_KD)]
    checks["baseline_comparisons"] = len(wins)
    checks["baseline_wins"] = sum(c["accuracy"]["verdict"] == "ahead" and c["macro_f1"]["verdict"] == "ahead"
                                  for c in wins)
    best_ft = {}
    for ft in (False, True):
        group = [c for c in wins if c["a"].endswith(" + KD") == ft]
        best_ft["KD" if ft else "plain"] = all(c["accuracy"]["verdict"] == "ahead" and
                                               c["macro_f1"]["verdict"] == "ahead" for c in group)
    checks["baselines_ok_by_variant"] = best_ft
    checks["baselines_ok"] = any(best_ft.values())
    checks["paper_claims"] = _paper_claims(main, top)
    return lines, checks


def _paper_claims(main: dict[str, Any], budget: float) -> list[dict[str, Any]]:
    """The paper's claims at ``budget``, each with its measured verdict per variant
    (without and with the same fine-tuning): who is compared, on what, the difference and
    its paired SE."""
    rows = _rows_by_name(main["rows"])
    by_pair = {(c["a"], c["b"]): c for c in main["comparisons"]}
    claims: list[dict[str, Any]] = []
    hscc = f"HSCC {budget:g}x"
    if hscc in rows:
        red = rows[hscc]["flops_reduction"]
        claims.append({"claim": f"cuts ≥ {100 * PAPER_FLOPS_REDUCTION:.1f}% of the FLOPs", "variant": "both",
                       "measured": f"{100 * red:.1f}%", "holds": red >= PAPER_FLOPS_REDUCTION - 1e-9})
    for ft in (False, True):
        a = hscc + (" + KD" if ft else "")
        variant = "with the same fine-tuning" if ft else "without fine-tuning"
        refs = [("original", "keeps (or raises) the original's accuracy", ("accuracy",))]
        if ft:
            refs.append((ORIGINAL_KD, "keeps the accuracy of the original given the same fine-tuning", ("accuracy",)))
        refs += [(f"{base} {budget:g}x" + (" + KD" if ft else ""), f"beats {base}", tuple(_METRICS))
                 for base in ("Global SVD", "Tucker-2")]
        for b, claim, metrics in refs:
            c = by_pair.get((a, b))
            if c is None:
                continue
            for m in metrics:
                if m not in c:
                    continue
                d = c[m]
                holds = d["diff"] >= 0 if claim.startswith("keeps") else d["verdict"] == "ahead"
                claims.append({"claim": f"{claim} on {_METRICS[m]}" if not claim.startswith("keeps") else claim,
                               "variant": variant, "a": a, "b": b, "metric": m, "diff": d["diff"], "se": d["se"],
                               "verdict": d["verdict"], "holds": bool(holds),
                               "measured": f"{100 * d['diff']:+.1f} points (SE {100 * d['se']:.1f})"})
    return claims


def _acceptance(checks: dict[str, Any], original_acc: float) -> list[str]:
    b = checks["budget"]
    out = [f"At {b:g}x HSCC removes {100 * checks['flops_reduction']:.1f}% of the FLOPs "
           f"({'meets' if checks['flops_ok'] else 'misses'} the ≥ {100 * PAPER_FLOPS_REDUCTION:.1f}% bar)."]
    for variant, d in checks["accuracy_vs_original"].items():
        label = f"HSCC {b:g}x" + (" + KD" if variant == "KD" else "")
        rel = "not below" if d["diff"] >= 0 else "below"
        out.append(f"{label} accuracy is {rel} the original's ({100 * original_acc:.1f}%): "
                   f"{100 * d['diff']:+.1f} points (paired SE {100 * d['se']:.1f}).")
    for variant, ok in checks["baselines_ok_by_variant"].items():
        label = "with distillation" if variant == "KD" else "without fine-tuning"
        out.append(f"{label.capitalize()}: HSCC is {'' if ok else 'not '}ahead of both baselines at every budget on "
                   f"both accuracy and macro-F1 by more than one SE.")
    tuned = checks.get("vs_tuned_original")
    if tuned:
        out.append(f"Against the control the paper lacks, the original given the same fine-tuning: HSCC {b:g}x + KD is "
                   + ", ".join(f"{100 * d['diff']:+.1f} points on {_METRICS[m]} (SE {100 * d['se']:.1f})"
                               for m, d in tuned.items()) + ".")
    out.append(f"Overall: {checks['baseline_wins']} of {checks['baseline_comparisons']} HSCC-vs-baseline comparisons "
               f"are wins by more than one SE on both accuracy and macro-F1.")
    return out


def _closing(main: dict[str, Any], checks: dict[str, Any], vgg: dict[str, Any] | None, quick: bool,
             vgg_real: dict[str, Any] | None = None) -> list[str]:
    """Computed observations that explain the verdict (only facts from the tables)."""
    rows = _rows_by_name(main["rows"])
    orig = rows["original"]
    out = []
    met = checks["flops_ok"] and checks["accuracy_ok"] and checks["baselines_ok"]
    out.append("All acceptance checks of issue 4 are met." if met else
               "Not every acceptance check of issue 4 is met; the data say so, and the numbers below say why.")
    if quick:
        out.append("This is a --quick run: the model is trained for one epoch on a handful of phantoms, the test set "
                   "is tiny and the 4096-wide FC layers are left uncompressed, so none of these numbers is evidence.")
    out.append(f"The original AlexNet reaches {100 * orig['accuracy']:.1f}% ± {100 * orig['accuracy_se']:.1f}% "
               f"on {orig.get('n', '?')} held-out test images; every compressed model is judged against it.")
    for b in sorted({r["budget"] for r in main["rows"] if r["method"] == "hscc"}):
        parts = []
        for m, label in (("svd", "Global SVD"), ("tucker", "Tucker-2"), ("hscc", "HSCC")):
            plain, kd = rows[f"{label} {b:g}x"], rows[f"{label} {b:g}x + KD"]
            parts.append(f"{label} {100 * plain['agreement']:.1f}% → {100 * kd['agreement']:.1f}% agreement, "
                         f"{100 * plain['accuracy']:.1f}% → {100 * kd['accuracy']:.1f}% accuracy")
        out.append(f"At {b:g}x, without → with distillation: " + "; ".join(parts) + ".")
    kept = [r["name"] for r in main["rows"] if r.get("finetuned") and (r.get("finetune") or {}).get("best_epoch") == 0]
    if kept:
        out.append(f"Distillation did not lower the validation loss of {', '.join(kept)} in any epoch, so early "
                   "stopping kept the weights from before it: those rows repeat their plain rows.")
    hscc = [r for r in main["rows"] if r["method"] == "hscc" and not r["finetuned"]]
    for r in hscc:
        eff = r.get("efficiency")
        if eff is not None:
            out.append(f"{r['name']} runs {r['speedup']:.2f}x faster for {r['flops_ratio']:.2f}x fewer FLOPs "
                       f"(efficiency {eff:.2f}; the design asks ≥ 0.7).")
    if vgg:
        n = len(vgg["scans"])
        out.append(f"The six-sample VGG16 section rests on {n} real scans: a difference of one scan is "
                   f"{100 / n:.0f} points, so those counts show direction, not significance"
                   + (f"; the real-test section ({vgg_real['test_set']['n']} scans) carries the evidence."
                      if vgg_real else "."))
    return out


def _vgg_findings(vgg: dict[str, Any]) -> list[str]:
    rows = vgg["rows"]
    n = len(vgg["scans"])
    lines = []
    for b in sorted({r["budget"] for r in rows if r["method"] != "original"}):
        group = [r for r in rows if r["budget"] == b and r["method"] != "original"]
        best_kl = min(group, key=lambda r: r["views_mean_kl"])
        text = "; ".join(f"{r['name']} keeps {r['scan_agreement_count']}/{n} held-out scans and "
                         f"{100 * r['views_agreement']:.0f}% of held-out views (views KL {r['views_mean_kl']:.3f})"
                         for r in group)
        lines.append(f"At {b:g}x: {text}. Lowest KL on held-out views: {best_kl['name']}.")
    return lines


def _ablation_findings(abl: dict[str, Any]) -> list[str]:
    lines = []
    for c in abl["comparisons"]:
        lines.append("; ".join(comparison_sentence(c, m) for m in ("accuracy", "macro_f1")) + ".")
    na = [r for r in abl["rows"] if r["status"] != "ok"]
    if na:
        lines.append(f"Not available in this build ({len(na)} row(s)): " + "; ".join(
            f"{r['name']} — {r['error']}" for r in na) + ". These rows fill in automatically once the compressor "
            "accepts the setting.")
    ok = [r for r in abl["rows"] if r["status"] == "ok"]
    ref = next((r for r in ok if r["name"] == abl.get("reference")), None)
    regional = [r for r in ok if tuple(r["config"]["regions"]) != (1, 1) and r["config"]["clusters"] == 1
                and r.get("speedup") is not None]
    if ref is not None and ref.get("speedup") and regional and tuple(ref["config"]["regions"]) == (1, 1):
        lines.append(
            "What regions cost in speed at the same FLOPs: " + "; ".join(
                f"{r['config']['regions'][0]}x{r['config']['regions'][1]} runs {r['speedup']:.2f}x "
                f"(efficiency {r['efficiency']:.2f})" for r in regional)
            + f", against {ref['speedup']:.2f}x (efficiency {ref['efficiency']:.2f}) for 1x1. Each region runs its own "
            "pair of small convolutions on a view of the padded input, so the same multiply-adds are spread over "
            "several smaller kernel calls, each with its own overhead and poorer cache and vector use.")
    for d in abl.get("identical_to_k1", []):
        lines.append(f"{d['row']} gave exactly the same ranks and predictions as {d['same_as']}: the clusters "
                     "changed nothing (no cluster units were allocated, or clustering is not applied).")
    return lines


def _pareto_findings(p: dict[str, Any]) -> list[str]:
    ok = {q["name"]: q for q in p["points"] if q["status"] == "ok"}
    rule = p["rule"]
    if not p.get("recommended"):
        return ["No sweep setting could be evaluated, so there is no recommendation."]
    rec, best = ok[p["recommended"]], ok[p["best"]]
    lines = [f"{len(ok)} settings evaluated on the validation set ({len(p['points']) - len(ok)} not available); "
             f"{len(p['front'])} are Pareto-optimal: " + ", ".join(p["front"]) + "."]
    if rule["fallback"]:
        lines.append(f"No Pareto-optimal setting removes ≥ {100 * rule['min_reduction']:.1f}% of the FLOPs (the "
                     "paper's operating point), so the whole front was considered.")
    else:
        lines.append(f"Of these, {len(rule['candidates'])} remove ≥ {100 * rule['min_reduction']:.1f}% of the FLOPs "
                     "(the paper's operating point): " + ", ".join(rule["candidates"]) + ".")
    lines.append(f"The most accurate of them is {best['name']} ({100 * best['accuracy']:.1f}% ± "
                 f"{100 * best['accuracy_se']:.1f}%); within one SE of it: " + ", ".join(rule["tied"]) + ".")
    lines.append(f"**Recommended: {rec['name']}** — the simplest of those (fewest regions × clusters, then fewest "
                 f"FLOPs): {100 * rec['accuracy']:.1f}% validation accuracy at {rec['gflops']:.3f} GFLOPs "
                 f"({100 * rec['flops_reduction']:.1f}% fewer).")
    t = p.get("recommended_test")
    if t:
        lines.append(f"On the test set it scores {100 * t['accuracy']:.1f}% ± {100 * t['accuracy_se']:.1f}% accuracy "
                     f"and {100 * t['macro_f1']:.1f}% ± {100 * t['macro_f1_se']:.1f}% macro-F1 (no fine-tuning).")
    default = p.get("default")
    if default == rec["name"]:
        lines.append("This is the compressor's current default setting at this budget: the data support keeping it.")
    elif default in ok:
        d = ok[default]
        close = d["accuracy"] >= rec["accuracy"] - (rec.get("accuracy_se") or 0.0)
        lines.append(f"The compressor's current default at this budget, {default}, scores "
                     f"{100 * d['accuracy']:.1f}% ± {100 * d['accuracy_se']:.1f}% and is "
                     f"{'on' if d.get('pareto') else 'not on'} the front; by the rule above the data suggest "
                     f"{rec['name']} instead" + (", but the default is within one SE of it, so the case for a change "
                                                 "is weak." if close else "."))
    return lines


def _busy(env: dict[str, Any]) -> str | None:
    """A warning when other work shared the CPUs (load average above half the usable CPUs).

    The end reading is taken while the report's own threads have kept the CPUs busy for
    minutes, so they are subtracted from it; the start reading precedes any work."""
    own = env.get("torch_threads") or 0
    loads = (env.get("load_average") or [])[:1] + [max(0.0, v - own) for v in (env.get("load_average_end") or [])[:1]]
    cpus = env.get("cpus_usable") or env.get("cpu_count") or 1
    if not loads or max(loads) <= 0.5 * cpus:
        return None
    return (f"the machine was busy with other work (1-minute load average, less this report's own threads at the "
            f"end: {' → '.join(f'{v:.1f}' for v in loads)} "
            f"on {cpus} usable CPUs), so latencies, speed-ups and wall times are inflated and noisy; FLOPs and "
            "accuracies are unaffected.")


def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


def render(results: dict[str, Any]) -> str:
    """The whole REPORT.md from the report's results dict."""
    s = results["settings"]
    quick = s["quick"]
    env = results["environment"]
    total = results["seconds_total"]
    out = [f"# HSCC-MRI report{' (quick mode — numbers are not evidence)' if quick else ''}", ""]
    out.append(f"Regenerated by `{env['command']}` on {results['started_at']} (UTC); total wall time "
               f"**{total / 60:.1f} min** on {env['torch_threads']} thread(s) of {env['cpu']}. Every number below "
               "is in `report.json`; figures are in `figures/`.")
    out.append("")
    busy = _busy(env)
    if busy:
        out += [f"> **Timing caveat:** {busy}", ""]
    al = results.get("alexnet")
    checks = None
    if al and "main" in al:
        main = al["main"]
        info = al["model"]
        data = al["data"]
        findings, checks = _main_findings(main, quick)
        src = "phantoms" if data["source"] == "phantoms" else f"the folder data set `{data['source']}`"
        train = info["training"] or {}
        if info["trained_now"]:
            origin = f"trained now with the train command ({info['reason']}; {info['seconds'] / 60:.1f} min)"
        elif info["reason"].startswith("given"):
            origin = f"the checkpoint `{info['checkpoint']}` given with --checkpoint, used as it is"
        else:
            origin = (f"the cached checkpoint `{info['checkpoint']}` (it matches the train command's current "
                      "defaults and reproduces its recorded test accuracy)")
        recipe = (f"trained for {train['config']['epochs']} epochs on {train['sizes']['train']} images"
                  if "config" in train and "sizes" in train else "no training record beside it")
        ft = main["finetune_config"]
        hc = main["hscc_config"]
        real = data["source"] != "phantoms"
        caveat = ([f"> **Real scans, one caveat:** the public data set has no patient IDs and many `Testing/` slices have "
                   "a near-duplicate slice of the same patient in `Training/` (the data set's README: 773 of 1,311 "
                   "public test images correlate ≥ 0.95 with a training image), so test accuracy is optimistic for "
                   "new patients. `Training/` is a resized, re-encoded copy with shifted intensities; `Testing/` holds "
                   "the original files: every model here is trained on one look and tested on the other.", ""]
                  if real else [])
        aug = train.get("batch_augmentation")
        recipe += (f"; augmentation: {aug} on whole batches" + (f" ({AFFINE_DESCRIPTION})" if aug == "affine" else "")
                   if aug else "")
        if real and "test" in train:
            recipe += (f"; intensity: every scan windowed to [0, 1] by its own 0–99.5th percentiles (so the copies' "
                       f"brightness shift cancels); {train['seconds']['total'] / 60:.1f} min on "
                       f"{train.get('threads', '?')} thread(s), {train.get('processes', 1)} process(es)")
        out += [
            "## Summary", "",
            _bullets(_acceptance(checks, _rows_by_name(main["rows"])["original"]["accuracy"])), "",
            "The paper's claims, measured (paired bootstrap on the same test images; \"holds\" for a \"beats\" claim "
            "needs a lead of more than one SE):", "",
            tables.claims_table(checks["paper_claims"]), "",
            *caveat,
            f"## 1. AlexNet trained on {src}", "",
            f"Model: {origin}; {recipe}. "
            f"Test set: {data['test']} held-out images (class counts {data['test_class_counts']}), never used for "
            f"calibration, fine-tuning or model choice. HSCC calibration: {data['calibration']} unlabelled training "
            f"images. Distillation (\"+ KD\"): the same {ft['epochs']} epoch(s) for every method on {data['finetune']} "
            f"labelled training images (lr {ft['lr']:g}, T = {ft['temperature']:g}, label weight "
            f"{ft['label_weight']:g}, early stopping on a {ft['val_fraction']:.0%} split). HSCC uses the compressor's "
            f"defaults: regions {hc['regions'][0]}x{hc['regions'][1]}, K = {hc['clusters']}, {hc['allocation']} "
            f"allocation, sequential refit {'on' if hc['sequential'] else 'off'}, ranks in multiples of "
            f"{hc['rank_multiple']}" + (f", layers excluded: {', '.join(hc['exclude'])}" if hc["exclude"] else "")
            + f". ± is the bootstrap SE ({s['n_boot']} resamples of the test set). Latency: batch 1, median of "
            f"{s['bench_runs']} interleaved runs after {s['bench_warmup']} warm-up, {s['threads']} thread(s), "
            "channels-last; speed-up = original median / compressed median in the same process.", "",
            tables.main_table(main), "",
            "Paired comparisons (same test images in every bootstrap resample; SE of the difference):", "",
            _bullets(findings), "",
            "![confusion matrices](figures/confusion_alexnet.png)", "",
            "![per-class precision, recall, F1](figures/per_class_alexnet.png)", "",
        ]
    ev = results.get("vgg_real")
    if ev:
        t = ev["test_set"]
        out += [
            "## 2. Pretrained VGG16 on the real test set", "",
            f"{t['n']} real scans of `{t['folder']}` (class counts {t['class_counts']}), imported from `{ev['file']}` "
            f"(SHA-256 `{ev['sha256'][:16]}…`), which `{ev['command']}` writes. HSCC is calibrated on the 256 real "
            "training scans shipped with the product; no fine-tuning. ± is the bootstrap SE "
            f"({(ev.get('bootstrap') or {}).get('n', '?')} resamples); agreement = top-1 agreement with the "
            "uncompressed model; latency: batch 1, PyTorch, "
            f"{(ev.get('latency') or {}).get('threads', '?')} thread(s).", "",
            tables.vgg_real_table(ev), "",
        ]
    vgg = results.get("vgg")
    if vgg:
        out += [
            f"## 2{'b' if ev else ''}. Pretrained VGG16 on the six sample scans (leave-one-scan-out)", "",
            f"The real sample scans ({', '.join(f['file'] for f in vgg['scans'])}; true class from the file name) "
            f"and {vgg['test_views']} augmented views of each — **sample scans and augmented views, not a test "
            "set**. HSCC is evaluated leave-one-scan-out: each scan is tested by a model calibrated without it "
            f"(calibration: the other scans in {vgg['views_per_scan']} augmented view(s) each plus "
            f"{vgg['phantoms']} phantoms). Agreement = the compressed model keeps the original's label; KL = mean "
            "KL(original ‖ compressed). Sample accuracy: held-out predictions against the true class. FLOPs, "
            "params and latency are those of the model compressed on all scans (latency: batch 1, median of "
            f"{s['vgg_bench_runs']} interleaved runs, {s['threads']} thread(s)). No fine-tuning.", "",
            tables.vgg_table(vgg), "",
            _bullets(_vgg_findings(vgg)), "",
        ]
    if al and "ablation" in al:
        abl = al["ablation"]
        out += [
            f"## 3. Ablation (AlexNet, HSCC at {abl['base_config']['budget']:g}x, test set, no fine-tuning)",
            "",
            "One change per row against the reference (the main table's HSCC setting). Δ = row − reference, paired "
            "bootstrap SE in parentheses (points). A row at another budget (uniform allocation at the smaller "
            "budget: does the global allocator beat one FLOPs ratio for every layer there too?) is compared with the "
            "default setting at its own budget.", "",
            tables.ablation_table(abl), "",
            _bullets(_ablation_findings(abl)), "",
        ]
    if al and "pareto" in al:
        p = al["pareto"]
        out += [
            "## 4. Pareto analysis (AlexNet, validation set)", "",
            "Settings are chosen on the validation set, not the test set. The black step line is the Pareto front of "
            "the HSCC settings (no setting is both cheaper and more accurate); baselines and the original for "
            "reference.", "",
            "![Pareto front](figures/pareto_alexnet.png)", "",
            _bullets(_pareto_findings(p)), "",
            tables.pareto_table(p), "",
        ]
    ph = results.get("phantoms")
    if ph:
        out += [
            "## 5. Synthetic benchmark: the AlexNet trained on phantoms", "",
            f"Phantoms, not patients: the earlier report `{ph['file']}` ({ph['started_at']}, SHA-256 "
            f"`{ph['sha256'][:16]}…`; `{ph['command']}` regenerates it), {ph['data']['test']} held-out test phantoms. "
            "Kept as a controlled benchmark; the real-scan sections above are the evidence.", "",
            tables.main_table(ph["main"]), "",
        ]
    if al and "main" in al:
        out += ["## Closing note", "", _bullets(_closing(al["main"], checks, vgg, quick, ev)), ""]
    out += [
        "## Reproducibility", "",
        tables.environment_table(env, s), "",
        "Seeds: " + ", ".join(f"{k} {v}" for k, v in results.get("seeds", {}).items()) + ".", "",
        "Wall time of each part:", "",
        tables.timing_table(results["seconds"], total), "",
        f"Sizes: {'quick' if quick else 'full'} preset — see `settings` in report.json. The full preset is planned "
        f"at {sum(results.get('time_plan_minutes', {}).values()):.0f} min on 2 idle cores with a cached AlexNet "
        "checkpoint (breakdown: `time_plan_minutes` in report.json).", "",
    ]
    return "\n".join(out)
