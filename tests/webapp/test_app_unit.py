"""The app's pieces without a server: command line, handlers, display helpers."""
from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from models import DISPLAY_NAMES, ModelSpec, build_model
from preprocessing import Scan, ScanError, load_scan, to_model_input
from webapp.models import ModelPair
from webapp.predict import Comparison, ModelResult, compare_slice, comparison_html, model_view
from webapp.ui import EXAMPLES, analyse_file, analyse_slice

from tests.paths import ROOT, SAMPLES


@pytest.fixture(scope="module")
def pair() -> ModelPair:
    """Two identical small models (AlexNet, random weights): the handlers do not care."""
    torch.manual_seed(0)
    model = build_model("alexnet")
    report = {"flops_original": 6e8, "flops_compressed": 1e8, "params_original": 5e7, "params_compressed": 1e7}
    return ModelPair(original=model, compressed=copy.deepcopy(model), report=report, name="TEST 6x",
                     reference_name="alexnet")


def test_help_explains_the_flags():
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    for flag in ("--share", "--port", "--host", "--model", "--method", "--budget", "--cache-dir", "--rebuild"):
        assert flag in out.stdout
    assert "127.0.0.1" in out.stdout and "not a diagnosis" in out.stdout


def test_examples_exist_and_are_readable():
    assert len(EXAMPLES) == 9 and len({p.name for p in EXAMPLES}) == 9
    for p in EXAMPLES:
        load_scan(p)


@pytest.mark.parametrize("spec", [
    ModelSpec(name="grey", input_size=(64, 48), channels=1),
    ModelSpec(name="rgb", input_size=(40, 40), channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
])
def test_model_view_undoes_the_input_normalisation(spec):
    rng = np.random.default_rng(0)
    img = rng.random((80, 70)).astype(np.float32)
    x = to_model_input(img, spec, normalize=False)
    view = model_view(x, spec)
    assert view.dtype == np.uint8 and view.shape == tuple(spec.input_size)  # grey replicated -> one channel
    plain = to_model_input(img, ModelSpec(name="plain", input_size=spec.input_size, channels=1), normalize=False)
    assert np.abs(view.astype(float) - plain[0].numpy() * 255).max() <= 1.0


def test_compare_slice_times_both_models_on_the_same_input(pair):
    image = load_scan(SAMPLES / "Te-gl_0010.jpg").image()
    cmp = compare_slice(pair, image, repeats=2)
    assert cmp.agree and cmp.compressed.probabilities == pytest.approx(cmp.original.probabilities)
    assert cmp.compressed.latency_ms > 0 and cmp.original.latency_ms > 0 and cmp.repeats == 2
    assert cmp.image.shape == tuple(pair.spec.input_size) and cmp.threads == torch.get_num_threads()
    assert sum(cmp.original.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_analyse_file_for_image_volume_bad_file_and_clear(pair, tmp_path):
    state, slider, status, image, label_c, label_o, html = analyse_file(str(SAMPLES / "Te-me_0016.jpg"), pair, 1)
    assert isinstance(state, Scan) and status.startswith("JPEG image")
    assert slider.visible is False and image.dtype == np.uint8
    assert set(label_c) == set(DISPLAY_NAMES.values()) and label_c == label_o
    assert "Models agree" in html and 'id="latency-compressed"' in html and "6.0x fewer" in html

    volume = SAMPLES / "dicom" / "Te-gl_0010_multiframe.dcm"
    scan = load_scan(volume)
    state, slider, status, *_ = analyse_file(str(volume), pair, 1)
    assert slider.visible is True and slider.value == scan.slice_index and slider.maximum == scan.num_slices - 1
    assert f"slice **{scan.slice_index}** of 0–{scan.num_slices - 1}" in status
    other = (scan.slice_index + 1) % scan.num_slices
    status, image, label_c, label_o, html = analyse_slice(float(other), state, pair, 1)
    assert f"slice **{other}**" in status and "Models agree" in html

    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(64))
    with pytest.raises(ScanError) as err:
        load_scan(bad)
    with pytest.warns(UserWarning):  # gr.Warning outside a page: a warning
        state, slider, status, image, label_c, label_o, html = analyse_file(str(bad), pair, 1)
    assert state is None and image is None and label_c is None and html == ""
    assert "cannot be used" in status and str(err.value).replace("'", "&#x27;") in status

    assert analyse_file(None, pair, 1)[2].startswith("Upload a scan")


def test_disagreement_is_flagged_and_text_is_escaped(pair):
    a = ModelResult("glioma", {"glioma": 0.6, "meningioma": 0.4, "notumor": 0.0, "pituitary": 0.0}, 10.0)
    b = ModelResult("notumor", {"glioma": 0.1, "meningioma": 0.1, "notumor": 0.8, "pituitary": 0.0}, 50.0)
    cmp = Comparison(np.zeros((4, 4), np.uint8), a, b, repeats=7, threads=2)
    html = comparison_html(cmp, pair)
    assert not cmp.agree and cmp.speedup == pytest.approx(5.0)
    assert "Models disagree" in html and 'role="alert"' in html and "no tumour" in html
    assert "Speed-up on this scan: <b>5.0x</b>" in html
    odd = ModelPair(pair.original, pair.compressed, pair.report, name="<script>x</script>", reference_name="r")
    assert "<script>" not in comparison_html(cmp, odd)


def test_an_answer_below_the_safety_net_is_marked_uncertain(pair):
    """The release's rule (here a margin threshold of 0.5) marks a compressed answer whose
    margin is below it as uncertain (an alert), and says so plainly when it is above."""
    import dataclasses

    from hscc_mri.safety_net import SafetyNet

    net = SafetyNet("margin", 0.5, "float", {"n": 329, "target": 0.995, "handed_over": 0.1, "kept_agreement": 1.0})
    with_net = dataclasses.replace(pair, release={"name": "x", "safety_net": net})
    ref = ModelResult("glioma", {"glioma": 0.9, "meningioma": 0.1, "notumor": 0.0, "pituitary": 0.0}, 50.0)
    unsure = ModelResult("glioma", {"glioma": 0.6, "meningioma": 0.4, "notumor": 0.0, "pituitary": 0.0}, 10.0)
    sure = ModelResult("glioma", {"glioma": 0.8, "meningioma": 0.1, "notumor": 0.1, "pituitary": 0.0}, 10.0)
    page = comparison_html(Comparison(np.zeros((4, 4), np.uint8), unsure, ref, repeats=7, threads=2), with_net)
    assert 'id="safety-net"' in page and "hscc-uncertain" in page and "<b>uncertain</b>" in page
    assert "margin over the second class is 0.200" in page and "threshold 0.500 chosen on 329 selection scans" in page
    page = comparison_html(Comparison(np.zeros((4, 4), np.uint8), sure, ref, repeats=7, threads=2), with_net)
    assert 'id="safety-net"' in page and "uncertain" not in page and "above the safety net" in page
    assert 'id="safety-net"' not in comparison_html(Comparison(np.zeros((4, 4), np.uint8), sure, ref, 7, 2), pair)


def _svd_artifact(tmp_path):
    """A seeded random AlexNet, its Global-SVD 1.5x compression (conv layers) and that
    compression saved as ``tmp_path/alexnet-svd.safetensors``."""
    from hscc_core import CompressionConfig
    from hscc_core.compression import compress
    from hscc_mri.resolve import save_model

    torch.manual_seed(0)
    dense = build_model("alexnet")
    compressed, _ = compress(dense, None, CompressionConfig(method="svd", budget=1.5, include=("features.*",)),
                             progress=False)
    path = tmp_path / "alexnet-svd.safetensors"
    save_model(compressed, path)
    return dense, compressed, path


def test_page_shows_the_real_test_measurement_of_exactly_this_artifact(tmp_path):
    """A compressed artifact with an ``evaluate --data`` sidecar: the page reads the numbers
    from that file; after the artifact changes, it says there is no measurement."""
    from hscc_mri.resolve import load_model, save_model
    from hscc_mri.testset import add_same_runtime_agreement, evaluate_models, load_test_set, write_evaluation
    from webapp.models import load_model_pair

    dense, compressed, path = _svd_artifact(tmp_path)
    test_set = load_test_set(ROOT / "tests" / "fixtures" / "brain-mri-mini" / "Testing", dense.spec, progress=False)
    result = evaluate_models(dense, {"svd": load_model(path)}, test_set, n_bootstrap=50, progress=False,
                             latency_repeats=1)
    write_evaluation(path, result, "svd")
    pair = load_model_pair(str(path), reference="alexnet", progress=False, log=lambda _m: None)
    image = load_scan(SAMPLES / "Te-gl_0010.jpg").image()
    html_text = comparison_html(compare_slice(pair, image, repeats=1, eight_bit=True), pair)
    row = result["rows"][1]
    assert 'id="real-test"' in html_text and f"Measured on {test_set.summary()['n']} labelled real scans" in html_text
    assert f"{100 * row['agreement']:.1f}%" in html_text and f"{100 * row['accuracy']:.1f}%" in html_text
    label = pair.runtime.label  # auto: OpenVINO here, no int8 plan for this artifact
    assert f"in PyTorch FP32; not measured in {label}" in html_text
    # Evaluated in the pair's runtime too (as evaluate --runtimes records it): the page
    # states that measurement, agreement with the reference compiled in the same runtime.
    from hscc_mri.runtimes import compile_model

    rt, pr = pair.runtime.runtime, pair.runtime.precision
    result = evaluate_models(dense, {"svd": load_model(path), f"uncompressed [{rt} {pr}]": compile_model(dense, rt, pr),
                                     f"svd [{rt} {pr}]": compile_model(load_model(path), rt, pr)},
                             test_set, n_bootstrap=50, progress=False, latency_repeats=1)
    for r in result["rows"][1:]:
        r["source"] = {"base_row": r["name"].split(" [")[0], "runtime": rt, "precision": pr} if "[" in r["name"] else {}
    add_same_runtime_agreement(result)
    write_evaluation(path, result, "svd")
    pair = load_model_pair(str(path), reference="alexnet", progress=False, log=lambda _m: None)
    html_text = comparison_html(compare_slice(pair, image, repeats=1, eight_bit=True), pair)
    same = result["rows"][3]["agreement_same_runtime"]
    assert f"both in {label}" in html_text and f"{100 * same:.1f}%" in html_text
    assert set(pair.evaluation["runtime_rows"]) == {f"{rt} {pr}"}
    with torch.no_grad():  # another model under the same name: the measurement no longer applies
        next(compressed.parameters()).add_(1e-3)
    save_model(compressed, path)
    pair = load_model_pair(str(path), reference="alexnet", progress=False, log=lambda _m: None)
    assert pair.evaluation is None
    assert "No real-test-set measurement" in comparison_html(compare_slice(pair, image, repeats=1), pair)


def test_analyse_file_reads_a_series_from_several_files_or_a_zip_and_survives_a_panic(pair, tmp_path):
    import zipfile

    from tests.preprocessing import test_scan_defects as defects
    from tests.preprocessing import test_series as series

    twin = load_scan(series.TWIN)
    files = series.write_series(tmp_path / "series", twin.data)
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in files:
            zf.write(p, p.name)
    for upload in ([str(p) for p in files], [str(archive)], str(archive)):
        state, slider, status, image, label_c, *_ = analyse_file(upload, pair, 1)
        assert isinstance(state, Scan) and state.num_slices == 7, status
        np.testing.assert_array_equal(state.data, twin.data)
        assert 'DICOM series "T1 AX" volume, 7 slices' in status and slider.maximum == 6
    panic = tmp_path / "panic.dcm"
    panic.write_bytes(defects.rle_panic_bytes()[0])
    with pytest.warns(UserWarning):
        state, slider, status, *_ = analyse_file([str(panic)], pair, 1)
    assert state is None and "cannot be used" in status


def test_both_models_run_in_one_named_runtime_and_what_the_cpu_cannot_run_is_refused(tmp_path):
    """The pair runs both models in the same runtime and precision (auto: OpenVINO here),
    the page names it, and the answers are the PyTorch ones; bf16 without native support
    is refused with the reason, not emulated."""
    from hscc_mri.runtimes import RuntimeUnavailable, has_native_bf16
    from webapp.models import load_model_pair

    dense, compressed, path = _svd_artifact(tmp_path)
    torch.manual_seed(1)  # the reference "alexnet" is built anew (random weights) by each pair
    pair = load_model_pair(str(path), reference="alexnet", progress=False, log=lambda _m: None)
    assert (pair.runtime.runtime, pair.runtime.precision) == ("openvino", "bf16" if has_native_bf16() else "fp32")
    assert "no measured int8 plan" in pair.runtime.reason  # a new artifact: auto does not measure plans at start
    assert pair.compressed.runtime == pair.original.runtime == "openvino"
    image = load_scan(SAMPLES / "Te-gl_0010.jpg").image()
    cmp = compare_slice(pair, image, repeats=1, eight_bit=True)
    page = comparison_html(cmp, pair)
    assert f'id="runtime-compressed">{pair.runtime.label}<' in page and f"both in {pair.runtime.label}" in page
    torch.manual_seed(1)
    torch_pair = load_model_pair(str(path), reference="alexnet", progress=False, log=lambda _m: None,
                                 runtime="torch", precision="fp32")
    cmp_torch = compare_slice(torch_pair, image, repeats=1, eight_bit=True)
    if pair.runtime.precision == "fp32":
        for a, b in ((cmp.compressed, cmp_torch.compressed), (cmp.original, cmp_torch.original)):
            assert a.label == b.label
            assert max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) < 1e-4
    if not has_native_bf16():
        with pytest.raises(RuntimeUnavailable, match="native bfloat16"):
            load_model_pair(str(path), reference="alexnet", progress=False, log=lambda _m: None,
                            runtime="openvino", precision="bf16")


def test_an_automatic_int8_start_that_fails_falls_back_to_float_and_an_asked_one_raises():
    """A start must not end on a quantiser failure it chose itself: auto's int8 falls back
    to the runtime's float choice; an unavailable automatic runtime to PyTorch fp32; what
    the user asked for explicitly is not second-guessed."""
    from hscc_mri.runtimes import Choice, CpuKind, KnownPlans, Request, RuntimeUnavailable, decide, resolve_choice

    here = CpuKind.here()
    plans = [KnownPlans(name, {"openvino": here}) for name in ("compressed", "reference")]
    auto = decide(Request("auto", "auto", plans))  # what load_model_pair asks, both models with plans
    auto_int8 = auto.choice
    assert (auto_int8.runtime, auto_int8.precision) == ("openvino", "int8")
    fallback = auto.fallback(auto_int8, RuntimeError("quantiser failed"))
    assert fallback is not None and fallback.runtime == "openvino"
    assert fallback.precision == resolve_choice("openvino", "auto").precision != "int8"
    assert "RuntimeError" in fallback.reason
    assert decide(Request("auto", "int8", plans)).fallback(auto_int8, RuntimeError("quantiser failed")) is None
    missing = auto.fallback(fallback, RuntimeUnavailable("openvino is not installed"))
    assert missing is not None and (missing.runtime, missing.precision) == ("torch", "fp32")
    asked_runtime = decide(Request("openvino", "auto", plans))
    assert asked_runtime.fallback(Choice("openvino", fallback.precision), RuntimeUnavailable("x")) is None
    assert auto.fallback(fallback, RuntimeError("a bug")) is None


def test_the_pair_comes_from_the_release_and_a_changed_file_is_built_instead(tmp_path):
    """A release holding the asked model: the pair is loaded from it (nothing built) and the
    page names the release model and its measured fidelity; after a byte of its compressed
    model changes, the log names the file with both hash prefixes and the pair is built
    through the cache instead (the changed file is never run)."""
    import shutil

    from hscc_mri.cache import cache_path
    from hscc_mri.release_build import make_release
    from models import _registry
    from webapp.models import load_model_pair, release_note
    from webapp.ui import _header

    from tests.mri.test_cache import TINY, _tiny
    from tests.paths import MINI_TESTING

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(_registry._BUILDERS, TINY, _tiny)
        folder = tmp_path / "release"
        manifest = make_release(folder, MINI_TESTING, model=TINY, budgets=(1.5,), cache_dir=tmp_path / "built",
                                calibration={"views": 1, "phantoms": 2}, int8=False, n_bootstrap=20, progress=False,
                                command="test", select=MINI_TESTING, log=lambda _m: None)
        messages: list[str] = []
        cache = tmp_path / "app-cache"
        pair = load_model_pair(TINY, "hscc", 1.5, cache, progress=False, log=messages.append, release=folder)
        assert "release_load" in pair.seconds and not cache.exists()  # nothing built
        name = f"{TINY}-hscc-1.5x@{manifest['models']['hscc-1.5x']['sha256'][:12]}"
        assert pair.release["name"] == name and name in messages[-1]
        fid = manifest["models"]["hscc-1.5x"]["fidelity"]
        note = release_note(pair)
        assert name in note and f"{100 * fid['agreement']:.1f}%" in note
        assert note in _header(pair) and pair.evaluation is not None
        image = load_scan(SAMPLES / "Te-gl_0010.jpg").image()
        page = comparison_html(compare_slice(pair, image, repeats=1, eight_bit=True), pair)
        assert 'id="real-test"' in page and 'id="safety-net"' in page  # the release's measured rule
        assert pair.release["safety_net"].threshold == manifest["models"]["hscc-1.5x"]["safety_net"]["float"]["threshold"]

        tampered = tmp_path / "tampered"
        shutil.copytree(folder, tampered)
        file = tampered / manifest["models"]["hscc-1.5x"]["file"]
        data = bytearray(file.read_bytes())
        data[-100] ^= 0x40
        file.write_bytes(bytes(data))
        messages.clear()
        pair = load_model_pair(TINY, "hscc", 1.5, cache, progress=False, log=messages.append, release=tampered)
        expected = manifest["files"][file.name]["sha256"][:12]
        refusal = next(m for m in messages if "corrupt" in m)
        assert f"{file} is corrupt or was changed" in refusal and f"{expected}… expected" in refusal
        assert f"building {file.name} instead" in refusal
        assert pair.release is None and "compressed_build" in pair.seconds
        assert cache_path(TINY, "hscc", 1.5, cache).is_file()
