"""From one scan slice to a side-by-side comparison of the two models (no UI code).

The flow is the product's: slice → :func:`preprocessing.to_model_input` (the model's own
input contract) → both models, timed interleaved on the same tensor → probabilities,
latencies, speed-up. The functions here work on arrays and return plain values, so they
are testable without a browser; :mod:`webapp.ui` only wires them to the page.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hscc_core import time_forward_interleaved
from models import DISPLAY_NAMES
from preprocessing import Scan, to_model_input

from .models import ModelPair

__all__ = ["Comparison", "ModelResult", "compare_slice", "comparison_html", "label_value", "model_view",
           "safety_net_html", "scan_summary"]

#: Timed runs per model and scan (the page shows the median).
DEFAULT_REPEATS = 7


@dataclass(frozen=True)
class ModelResult:
    """One model's answer on one slice.

    Attributes:
        label: the most probable class (model class name, e.g. ``notumor``).
        probabilities: class name → probability (softmax), every class.
        latency_ms: median forward time of a batch of one, milliseconds.
    """

    label: str
    probabilities: dict[str, float]
    latency_ms: float

    @property
    def confidence(self) -> float:
        """Probability of :attr:`label`."""
        return self.probabilities[self.label]


@dataclass(frozen=True)
class Comparison:
    """Both models on one slice.

    Attributes:
        image: what the model sees, as a displayable uint8 image ``(H, W)`` (grey) or
            ``(H, W, 3)``.
        compressed, original: the two answers.
        repeats: timed runs per model behind each median.
        threads: ``torch.get_num_threads()`` during the measurement.
    """

    image: np.ndarray
    compressed: ModelResult
    original: ModelResult
    repeats: int
    threads: int

    @property
    def agree(self) -> bool:
        """Whether both models give the same class."""
        return self.compressed.label == self.original.label

    @property
    def speedup(self) -> float:
        """Uncompressed latency / compressed latency on this scan (> 1: compressed is faster)."""
        return self.original.latency_ms / max(self.compressed.latency_ms, 1e-9)


def model_view(x: torch.Tensor, spec) -> np.ndarray:
    """Undo the model's mean/std normalisation of an input tensor, for display.

    Args:
        x: ``(C, H, W)`` float tensor from :func:`preprocessing.to_model_input`.
        spec: the model's :class:`models.ModelSpec` (``mean``, ``std``, scaling to [0, 1]).

    Returns:
        uint8 ``(H, W)`` when the channels are identical (a grey scan replicated into
        RGB), else ``(H, W, C)``.
    """
    c = x.shape[0]
    mean = torch.as_tensor(spec.mean, dtype=x.dtype).reshape(-1, 1, 1).expand(c, 1, 1)
    std = torch.as_tensor(spec.std, dtype=x.dtype).reshape(-1, 1, 1).expand(c, 1, 1)
    unit = (x * std + mean).clamp(0.0, 1.0)
    img = (unit * 255.0 + 0.5).to(torch.uint8).numpy()
    if c == 1 or all(np.array_equal(img[0], img[i]) for i in range(1, c)):
        return np.ascontiguousarray(img[0])
    return np.ascontiguousarray(img.transpose(1, 2, 0))


def _result(logits: torch.Tensor, class_names, latency_ms: float) -> ModelResult:
    probs = torch.softmax(logits.float(), dim=1)[0].tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    return ModelResult(class_names[best], dict(zip(class_names, probs)), latency_ms)


def compare_slice(pair: ModelPair, image: np.ndarray, repeats: int = DEFAULT_REPEATS,
                  eight_bit: bool = False) -> Comparison:
    """Run both models on one 2-D slice.

    Args:
        pair: the models.
        image: ``(H, W)`` slice in native units (brought to the model's input contract
            here, as for ``predict``).
        eight_bit: the slice is 8-bit PNG/JPEG pixels (see
            :func:`preprocessing.transforms.is_eight_bit`).
        repeats: timed runs per model; the models take turns (interleaved) so that load
            on the machine affects both alike.

    Returns:
        The :class:`Comparison`; latencies are medians of ``repeats`` batch-of-one runs.
    """
    x = to_model_input(image, pair.spec, eight_bit=eight_bit)
    with pair.lock:  # one measurement at a time: concurrent users must not share the cores
        (out_c, ms_c), (out_o, ms_o) = time_forward_interleaved(
            [pair.compressed, pair.original], x.unsqueeze(0), repeats=repeats)
        threads = torch.get_num_threads()
    names = list(pair.spec.class_names)
    return Comparison(image=model_view(x, pair.spec), compressed=_result(out_c, names, ms_c),
                      original=_result(out_o, names, ms_o), repeats=repeats, threads=threads)


def label_value(result: ModelResult) -> dict[str, float]:
    """Probabilities keyed by human-readable class names (for ``gr.Label``)."""
    return {DISPLAY_NAMES.get(k, k): float(v) for k, v in result.probabilities.items()}


def _display(label: str) -> str:
    return DISPLAY_NAMES.get(label, label)


def _giga(flops: Any) -> str:
    return f"{flops / 1e9:.2f} GFLOPs" if flops else "n/a"


def _mega(params: Any) -> str:
    return f"{params / 1e6:.2f} M" if params else "n/a"


def comparison_html(cmp: Comparison, pair: ModelPair) -> str:
    """The agreement banner and the side-by-side table (predictions, latency, speed-up,
    FLOPs, parameters) as HTML with stable element ids for tests and screen readers."""
    c, o, r = cmp.compressed, cmp.original, pair.report
    e = html.escape
    if cmp.agree:
        banner = (f'<div id="agreement" class="hscc-banner hscc-agree" role="status">'
                  f'Models agree: {e(_display(c.label))}</div>')
    else:
        banner = (f'<div id="agreement" class="hscc-banner hscc-disagree" role="alert">'
                  f'&#9888; Models disagree: the compressed model says <b>{e(_display(c.label))}</b>, '
                  f'the uncompressed model says <b>{e(_display(o.label))}</b>. Do not rely on either '
                  f'without review.</div>')
    flops_ratio = (r["flops_original"] / r["flops_compressed"]) if r.get("flops_compressed") else float("nan")
    rows = [
        ("Prediction", f'<span id="pred-compressed">{e(_display(c.label))} (p = {c.confidence:.3f})</span>',
         f'<span id="pred-original">{e(_display(o.label))} (p = {o.confidence:.3f})</span>'),
        (f"Latency (median of {cmp.repeats})", f'<span id="latency-compressed">{c.latency_ms:.1f} ms</span>',
         f'<span id="latency-original">{o.latency_ms:.1f} ms</span>'),
        ("FLOPs per scan", e(_giga(r.get("flops_compressed"))), e(_giga(r.get("flops_original")))),
        ("Parameters", e(_mega(r.get("params_compressed"))), e(_mega(r.get("params_original")))),
        ("Runs in", f'<span id="runtime-compressed">{e(pair.runtime.label)}</span>',
         f'<span id="runtime-original">{e(pair.runtime.label)}</span>'),
    ]
    body = "".join(f"<tr><th scope='row'>{name}</th><td>{a}</td><td>{b}</td></tr>" for name, a, b in rows)
    table = (f'<table id="comparison-table" class="hscc-table"><thead><tr><th></th>'
             f'<th>Compressed ({e(pair.name)})</th><th>Uncompressed ({e(pair.reference_name)})</th></tr></thead>'
             f'<tbody>{body}</tbody></table>')
    speed = (f'<p id="speedup" class="hscc-speedup">Speed-up on this scan: <b>{cmp.speedup:.1f}x</b> '
             f'(FLOPs {flops_ratio:.1f}x fewer; both in {e(pair.runtime.label)}, {cmp.threads} CPU '
             f'thread{"s" if cmp.threads != 1 else ""}, models timed in turns).</p>')
    return banner + safety_net_html(cmp, pair) + table + speed + real_test_html(pair)


def safety_net_html(cmp: Comparison, pair: ModelPair) -> str:
    """Whether the compressed answer is below the release's safety-net threshold (then it is
    marked uncertain: ``predict`` would hand this scan to the uncompressed model); empty
    when the pair has no safety net."""
    net = (pair.release or {}).get("safety_net")
    if net is None:
        return ""
    probs = torch.tensor([list(cmp.compressed.probabilities.values())], dtype=torch.float64)
    value = float(net.confidence(probs)[0])
    what = "top probability" if net.measure == "top" else "margin over the second class"
    chosen = (f'threshold {net.threshold:.3f} chosen on {net.selection.get("n")} selection scans so that the '
              f'answers kept agree with the uncompressed model on {100 * net.selection.get("target", 0):.1f}% '
              f'of them' if net.threshold is not None else "no threshold: every answer is checked")
    if bool(net.hand_over(probs)[0]):
        return (f'<div id="safety-net" class="hscc-banner hscc-uncertain" role="alert">Compressed answer '
                f'<b>uncertain</b>: its {what} is {value:.3f}, below the safety net ({html.escape(chosen)}). '
                f'Use the uncompressed model\'s answer for this scan.</div>')
    return (f'<p id="safety-net" class="hscc-sure">Compressed answer above the safety net: its {what} is '
            f'{value:.3f} ({html.escape(chosen)}).</p>')


def real_test_html(pair: ModelPair) -> str:
    """What ``evaluate --data`` measured for exactly this compressed artifact on a real
    labelled test set (read from its sidecar file), or a line saying it was not measured."""
    ev = pair.evaluation
    if not ev:
        return ('<p id="real-test" class="hscc-realtest">No real-test-set measurement for this compressed model '
                'yet (<code>hscc-mri evaluate --data DIR</code> records one).</p>')
    row, ref, test = ev["row"], ev["reference"], ev["test_set"]
    # What was measured in the runtime and precision the page runs, when it was measured
    # (evaluate --runtimes); else the PyTorch fp32 measurement, saying so.
    choice = pair.runtime
    measured = (ev.get("runtime_rows") or {}).get(f"{choice.runtime} {choice.precision}")
    if measured and measured.get("reference"):
        row, ref = measured["row"], measured["reference"]
        agreement_key = "agreement_same_runtime" if row.get("agreement_same_runtime") is not None else "agreement"
        where = f"both in {choice.label}"
    else:
        agreement_key = "agreement"
        where = ("in PyTorch FP32" + ("" if (choice.runtime, choice.precision) == ("torch", "fp32")
                                      else f"; not measured in {choice.label}"))

    def pct(key: str, r: dict) -> str:
        value, se = r.get(key), r.get(f"{key}_se")
        if value is None:
            return "n/a"
        return f"{100 * value:.1f}%" + (f" ± {100 * se:.1f}" if se is not None else "")

    e = html.escape
    return (f'<p id="real-test" class="hscc-realtest">Measured on {int(test["n"])} labelled real scans '
            f'({e(str(test.get("dataset") or ""))}/{e(str(test.get("split") or test.get("folder") or ""))}): '
            f'the compressed model agrees with the uncompressed one on <b>{pct(agreement_key, row)}</b> of them '
            + (f'({pct("agreement_confident", row)} where the uncompressed model is at least '
               f'{ev.get("confident_threshold", 0.9):g} sure); ' if agreement_key == "agreement" else "; ")
            + f'accuracy {pct("accuracy", row)} compressed vs {pct("accuracy", ref)} uncompressed '
            f'({e(where)}; ± bootstrap SE).</p>')


def scan_summary(scan: Scan, index: int | None = None) -> str:
    """Markdown about the scan read (format, series, size, slice, what was left out), no
    identifiers: a DICOM series is named by its description and slice count only."""
    fmt = {"dicom": "DICOM", "nifti": "NIfTI", "png": "PNG", "jpeg": "JPEG"}.get(scan.source_format,
                                                                             scan.source_format or "image")
    h, w = scan.data.shape[-2:]
    if "series_slices" in scan.tags:
        desc = scan.tags.get("SeriesDescription") or "(no description)"
        fmt = f'{fmt} series "{html.escape(desc)}"'
    if scan.is_volume:
        index = scan.slice_index if index is None else index
        default = " (the default: most brain signal)" if index == scan.slice_index else ""
        text = (f"{fmt} volume, {scan.num_slices} slices of {w}×{h} px; showing slice **{index}** of "
                f"0–{scan.num_slices - 1}{default}.")
    else:
        text = f"{fmt} image, {w}×{h} px."
    if scan.notes:
        text += " " + " ".join(html.escape(n) for n in scan.notes)
    return text
