"""The Gradio page: upload a scan, see both models side by side.

Handlers are plain functions of the uploaded path (or the scan kept in the session) that
return the values of the page's components; :func:`build_demo` wires them to the page
and :func:`launch` serves it. Nothing here computes predictions itself
(:mod:`webapp.predict` does).

Privacy: a scan is read once into memory (kept per browser session for the slice
slider, dropped after :data:`STATE_TTL_S`); Gradio's temporary copies of uploads and of
the shown images are deleted by age (``temp_ttl_s``) and when the server stops (``app.py``
also gives Gradio a private temporary folder and removes it at exit). Nothing about a
scan is logged.
"""
from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Sequence

import gradio as gr

from preprocessing import PASS_THROUGH, Scan, ScanError, group_uploads, is_eight_bit, load_scan

from .models import ModelPair, release_note
from .predict import DEFAULT_REPEATS, compare_slice, comparison_html, label_value, scan_summary

__all__ = ["CSS", "EXAMPLES", "build_demo", "launch", "theme"]

ROOT = Path(__file__).resolve().parents[1]
#: One click away on the page: the real JPEGs, a DICOM, a multi-frame DICOM, a NIfTI volume.
EXAMPLES: list[Path] = sorted((ROOT / "samples").glob("*.jpg")) + [
    ROOT / "samples" / "dicom" / "Te-me_0016.dcm",
    ROOT / "samples" / "dicom" / "Te-gl_0010_multiframe.dcm",
    ROOT / "samples" / "nifti" / "Te-pi_0014.nii.gz",
]
#: Seconds a session keeps its scan in memory (for the slice slider).
STATE_TTL_S = 1800

DISCLAIMER = ("**Research decision support only — not a diagnosis.** The classes come from two neural "
              "networks trained on a public data set; they can be wrong and must be reviewed by a qualified "
              "clinician together with the full study and the patient's history.")
WELCOME = "Upload a scan or click an example below."

CSS = """
.hscc-banner {padding: 0.6em 0.9em; border-radius: 6px; font-weight: 600; margin-bottom: 0.6em;}
.hscc-agree {background: #e7f5ec; color: #14532d; border: 1px solid #86c49b;}
.hscc-disagree {background: #fdecea; color: #7f1d1d; border: 2px solid #dc2626;}
.hscc-uncertain {background: #fff7e6; color: #7c2d12; border: 2px solid #d97706;}
.hscc-table {width: 100%; border-collapse: collapse;}
.hscc-table th, .hscc-table td {padding: 0.35em 0.6em; border-bottom: 1px solid #ddd; text-align: left;}
.hscc-speedup {margin-top: 0.6em;}
#disclaimer {border-left: 4px solid #d97706; padding-left: 0.8em;}
"""


def theme() -> gr.themes.Base:
    """Gradio's default look with system fonts only (no web-font downloads: works offline)."""
    return gr.themes.Default(font=["system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def _empty(status: str) -> tuple:
    """Component values for 'nothing to show' with ``status`` as the message."""
    return (None, gr.Slider(visible=False, value=0), status, None, None, None, "")


def _outputs_for(pair: ModelPair, scan: Scan, index: int | None, repeats: int) -> tuple:
    cmp = compare_slice(pair, scan.image(index), repeats=repeats, eight_bit=is_eight_bit(scan))
    return (cmp.image, label_value(cmp.compressed), label_value(cmp.original), comparison_html(cmp, pair))


def _error_banner(message: str) -> str:
    """The status shown for a file that cannot be used (the ScanError message)."""
    return (f'<div class="hscc-banner hscc-disagree" role="alert"><b>This file cannot be used.</b> '
            f'{html.escape(message)}</div>')


def _unexpected(e: BaseException) -> str:
    # The message may quote the file (a patient identifier): log the type only.
    print(f"app: analysis failed with {type(e).__name__}", file=sys.stderr, flush=True)
    return _error_banner(f"Something went wrong while analysing this scan ({type(e).__name__}). "
                         "Please try another file.")


def _sources(path: str | Sequence[str] | None) -> list[str | list[str]]:
    """What the upload holds, each read on its own: single files, and the DICOM files
    together as one series (:func:`preprocessing.group_uploads`); ``[]`` if empty."""
    if path is None or isinstance(path, str):
        return [path] if path else []
    return group_uploads([str(p) for p in path if p])


def _upload_name(source: str | list[str]) -> str:
    first = source[0] if isinstance(source, list) else source
    more = f" and {len(source) - 1} more DICOM files" if isinstance(source, list) else ""
    return html.escape(Path(first).name) + more


def _uploads_listing(rows: list[str]) -> str:
    """The list of every upload's result, shown when several were given together."""
    items = "".join(f"<li>{row}</li>" for row in rows)
    return f'<ul id="uploads" class="hscc-uploads">{items}</ul>'


def _read(source: str | list[str], read_timeout_s: float | None) -> Scan:
    """``load_scan``, in a child process with a deadline when ``read_timeout_s`` is set (so a
    slow or hostile upload holds up no other request; see :mod:`preprocessing.isolated`)."""
    if not read_timeout_s:
        return load_scan(source)
    from preprocessing.isolated import load_scan_within

    return load_scan_within(source, read_timeout_s)


def analyse_file(path: str | Sequence[str] | None, pair: ModelPair, repeats: int = DEFAULT_REPEATS,
                 read_timeout_s: float | None = None) -> tuple:
    """Handler for a new upload (one file, several files of a DICOM series, a zip), an
    example click or a clear.

    Args:
        path: the uploaded file or files (Gradio's temporary copies), or ``None`` when
            cleared. Several files, or one ``.zip``, are read as one DICOM series whose
            slices the slider then walks in their sorted order.
        pair: the models.
        repeats: timed runs per model.
        read_timeout_s: read each upload in a child process stopped after this many
            seconds (``None``: in this process, no limit).

    Returns:
        Values of ``(scan state, slice slider, status, model input image, compressed label,
        uncompressed label, comparison HTML)``. A file that cannot be read gives its
        :class:`~preprocessing.ScanError` message as the status and empty results.
    """
    sources = _sources(path)
    if not sources:
        return _empty(WELCOME)
    if len(sources) > 1:
        return _analyse_several(sources, pair, repeats, read_timeout_s)
    try:
        scan = _read(sources[0], read_timeout_s)
        outputs = _outputs_for(pair, scan, None, repeats)
    except ScanError as e:
        gr.Warning(str(e))
        return _empty(_error_banner(str(e)))
    except PASS_THROUGH:
        raise
    except BaseException as e:  # noqa: BLE001  (keep serving, even after a decoder's panic)
        return _empty(_unexpected(e))
    return _shown(scan, outputs)


def _shown(scan: Scan, outputs: tuple, status: str | None = None) -> tuple:
    volume = scan.is_volume and scan.num_slices > 1
    slider = gr.Slider(visible=volume, minimum=0, maximum=max(scan.num_slices - 1, 1), step=1,
                       value=scan.slice_index or 0, interactive=True,
                       label=f"Slice (0–{scan.num_slices - 1}); default {scan.slice_index}" if volume else "Slice")
    return (scan, slider, status or scan_summary(scan), *outputs)


def _analyse_several(sources: list[str | list[str]], pair: ModelPair, repeats: int,
                     read_timeout_s: float | None = None) -> tuple:
    """Several uploads that are not one series: each is classified on its own and listed;
    the page shows the last one that could be read (the newest upload)."""
    rows, shown = [], None
    for source in sources:
        name = _upload_name(source)
        try:
            scan = _read(source, read_timeout_s)
            outputs = _outputs_for(pair, scan, None, repeats)
        except ScanError as e:
            rows.append(f"<b>{name}</b>: cannot be used. {html.escape(str(e))}")
            continue
        except PASS_THROUGH:
            raise
        except BaseException as e:  # noqa: BLE001
            rows.append(f"<b>{name}</b>: {_unexpected(e)}")
            continue
        best_c, best_o = (max(labels, key=labels.get) for labels in outputs[1:3])
        rows.append(f"<b>{name}</b>: compressed <b>{html.escape(best_c)}</b> ({outputs[1][best_c]:.3f}), "
                    f"uncompressed <b>{html.escape(best_o)}</b> ({outputs[2][best_o]:.3f})")
        shown = (scan, outputs, name)
    listing = _uploads_listing(rows)
    if shown is None:
        return _empty(_error_banner("None of the files given together could be used.") + listing)
    scan, outputs, name = shown
    status = f"{len(sources)} uploads, each classified on its own; showing **{name}**: {scan_summary(scan)}"
    return _shown(scan, outputs, status + listing)


def analyse_slice(index: float, scan: Scan | None, pair: ModelPair, repeats: int = DEFAULT_REPEATS) -> tuple:
    """Handler for the slice slider: both models on slice ``index`` of the session's volume.

    Returns:
        Values of ``(status, model input image, compressed label, uncompressed label,
        comparison HTML)``.
    """
    if scan is None:
        return (WELCOME, None, None, None, "")
    try:
        index = int(round(index))
        return (scan_summary(scan, index), *_outputs_for(pair, scan, index, repeats))
    except ScanError as e:
        return (_error_banner(str(e)), None, None, None, "")
    except PASS_THROUGH:
        raise
    except BaseException as e:  # noqa: BLE001
        return (_unexpected(e), None, None, None, "")


def _header(pair: ModelPair) -> str:
    r = pair.report
    ratio = r["flops_original"] / r["flops_compressed"] if r.get("flops_compressed") else float("nan")
    return (f"# HSCC-MRI: brain-tumour MRI classifier\n"
            f"Classifies a brain MRI slice as glioma, meningioma, pituitary tumour or no tumour with a "
            f"**compressed** network ({pair.name}: {ratio:.1f}x fewer FLOPs) next to the **uncompressed** "
            f"one ({pair.reference_name}), both running in {pair.runtime.label} on this CPU. Upload DICOM (single or multi-frame), NIfTI (.nii, .nii.gz) "
            f"or PNG/JPEG — or a DICOM series as several files or one .zip; the format is recognised "
            f"from the content." + release_note(pair))


def build_demo(pair: ModelPair, repeats: int = DEFAULT_REPEATS, temp_ttl_s: int = 300,
               read_timeout_s: float | None = None) -> gr.Blocks:
    """Build the page for ``pair``.

    Args:
        pair: the models to compare.
        repeats: timed runs per model and scan.
        temp_ttl_s: Gradio's temporary files (uploads, shown images) older than this are
            deleted (checked every ``temp_ttl_s / 2`` s; all are deleted at shutdown).
        read_timeout_s: each upload is read in a child process stopped after this many
            seconds (``None``: read in the server process, no limit).

    Returns:
        The Blocks; the upload/example event is the API endpoint ``/predict`` (input: a
        file; outputs: slider, status, image, both labels, comparison HTML).
    """
    ttl = max(int(temp_ttl_s), 10)
    with gr.Blocks(title="HSCC-MRI: compressed vs uncompressed", analytics_enabled=False,
                   delete_cache=(max(ttl // 2, 5), ttl)) as demo:
        gr.Markdown(_header(pair))
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        scan_state = gr.State(None, time_to_live=STATE_TTL_S)
        with gr.Row():
            with gr.Column(scale=2):
                file = gr.File(label="Scan file (DICOM, NIfTI, PNG/JPEG), or a DICOM series (several files or a .zip)",
                               file_count="multiple", type="filepath", elem_id="scan-file")
                slider = gr.Slider(0, 1, value=0, step=1, label="Slice", visible=False, elem_id="slice")
                status = gr.Markdown(WELCOME, elem_id="status")
                image = gr.Image(label="What the models see (preprocessed input)", type="numpy", image_mode=None,
                                 format="png", interactive=False, height=300, elem_id="model-input",
                                 buttons=["fullscreen"])
            with gr.Column(scale=3):
                with gr.Row():
                    label_c = gr.Label(label=f"Compressed ({pair.name})", num_top_classes=4,
                                       elem_id="label-compressed")
                    label_o = gr.Label(label=f"Uncompressed ({pair.reference_name})", num_top_classes=4,
                                       elem_id="label-original")
                comparison = gr.HTML("", elem_id="comparison")
        gr.Examples(examples=[[[str(p)]] for p in EXAMPLES], inputs=[file], label="Example scans (one click)",
                    examples_per_page=len(EXAMPLES))

        file.change(lambda path: analyse_file(path, pair, repeats, read_timeout_s), inputs=[file],
                    outputs=[scan_state, slider, status, image, label_c, label_o, comparison],
                    api_name="predict", trigger_mode="always_last")
        slider.release(lambda index, scan: analyse_slice(index, scan, pair, repeats), inputs=[slider, scan_state],
                       outputs=[status, image, label_c, label_o, comparison], api_visibility="private",
                       trigger_mode="always_last")
    return demo


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           concurrency: int = 2, max_queue: int = 64, max_file_size: str = "512mb") -> None:
    """Serve ``demo`` and block until Ctrl+C / SIGTERM (then close the server cleanly).

    Args:
        host: interface to listen on (loopback by default: only this computer).
        port: TCP port (``None``: Gradio picks from 7860 up).
        share: ask Gradio for a public ``*.gradio.live`` link (sends traffic through
            Gradio's relay: scans leave this machine).
        concurrency: requests processed at once (model timing itself is serialised).
        max_queue: requests waiting at most; more are refused with "queue full".
        max_file_size: largest upload accepted (Gradio's size string, e.g. ``"512mb"``).
    """
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    demo.launch(server_name=host, server_port=port, share=share, theme=theme(), css=CSS,
                footer_links=["api"], run_history=False, ssr_mode=False, mcp_server=False, pwa=False,
                show_error=False, max_file_size=max_file_size, quiet=True, prevent_thread_lock=True)
    print(f"app: serving on {demo.local_url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    if share:
        print(f"app: public link {demo.share_url or '(could not be created)'}", file=sys.stderr, flush=True)
    demo.block_thread()
