"""Function-matching distillation (hscc_core.matching) and its random views (hscc_core.views)
on small real models: convergence toward the teacher, exact resume, frozen layers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import hscc_core
from hscc_core import CompressionConfig, DistillationError, MatchingConfig, ViewConfig, draw_views, function_matching
from hscc_core.matching import best_weights, feature_layer, load_checkpoint, matching_loss, trainable_modules


class GreyNet(nn.Module):
    """Three convs, a max-pool and two linears on 3x24x24 grey-as-RGB inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                      nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
        self.classifier = nn.Sequential(nn.Linear(32 * 36, 48), nn.ReLU(), nn.Linear(48, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _images(n: int, seed: int) -> torch.Tensor:
    """Smooth grey blobs in [0, 1], three equal channels (as a grey scan fed to an RGB model)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 6, 6, generator=g)
    grey = nn.functional.interpolate(coarse, size=(24, 24), mode="bilinear", align_corners=False)
    return grey.expand(-1, 3, -1, -1).contiguous()


@pytest.fixture(scope="module")
def pair() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    teacher = GreyNet().eval()
    # Global SVD at 4x: weights only, so the student starts well away from the teacher.
    student, _ = hscc_core.compress(teacher, None, CompressionConfig(method="svd", budget=4.0), progress=False,
                                    input_shape=(1, 3, 24, 24))
    return teacher, student


def _config(**overrides) -> MatchingConfig:
    base = dict(epochs=4, steps_per_epoch=6, batch_size=8, lr=3e-3, warmup_steps=2, temperature=2.0,
                feature_weight=0.5, checkpoint_every=4, views=ViewConfig(mix=0.5))
    base.update(overrides)
    return MatchingConfig(**base)


def _copy(model: nn.Module) -> nn.Module:
    import copy

    clone = copy.deepcopy(model)
    clone.hscc_replacements = model.hscc_replacements
    return clone


def test_views_are_seeded_keep_shape_range_and_equal_channels():
    x = _images(6, 1)
    a = draw_views(x, torch.Generator().manual_seed(3), ViewConfig())
    b = draw_views(x, torch.Generator().manual_seed(3), ViewConfig())
    c = draw_views(x, torch.Generator().manual_seed(4), ViewConfig())
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(a, a[:, :1].expand_as(a))  # grey stays grey
    plain = ViewConfig(flip=0, rotate=0, zoom=(1, 1), shift=0, resample=0, sharpen=0, intensity=0, noise=0, mix=0)
    assert torch.allclose(draw_views(x, torch.Generator().manual_seed(0), plain), x, atol=1e-5)


def test_view_config_refuses_bad_values():
    with pytest.raises(ValueError, match="probability"):
        ViewConfig(mix=1.5)
    with pytest.raises(ValueError, match="low <= high"):
        ViewConfig(gain=(1.2, 0.8))


def test_matching_loss_is_zero_for_identical_outputs_and_counts_features():
    logits = torch.randn(5, 4)
    feats = torch.randn(5, 8, 3, 3)
    loss, parts = matching_loss(logits, logits, 2.0, feats, feats, 1.0)
    assert float(loss) == pytest.approx(0.0, abs=1e-6) and parts["feature"] == pytest.approx(0.0, abs=1e-6)
    loss2, parts2 = matching_loss(logits, logits, 2.0, feats * 0, feats, 1.0)
    assert parts2["feature"] == pytest.approx(1.0) and float(loss2) == pytest.approx(1.0, rel=1e-5)


def test_only_the_compressed_factors_train_and_the_feature_layer_is_the_last_pool(pair):
    teacher, student = pair
    names = trainable_modules(student)
    assert names == [r["path"] for r in student.hscc_replacements] and names
    assert feature_layer(teacher) == "features.6"
    s = _copy(student)
    frozen_before = {k: v.clone() for k, v in s.state_dict().items()
                     if not any(k.startswith(n + ".") for n in names)}
    function_matching(s, teacher, _images(32, 1), _images(16, 2), _config(epochs=1), progress=False)
    after = s.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen_before.items())
    assert not any(p.requires_grad for p in s.parameters())


def test_a_student_started_away_from_its_teacher_converges_to_it(pair):
    teacher, student = pair
    s = _copy(student)
    result = function_matching(s, teacher, _images(64, 1), _images(48, 2), _config(epochs=6), progress=False)
    assert result.finished and len(result.history) == 6
    assert result.best["kl"] < 0.5 * result.before["kl"], (result.before, result.best)
    assert result.best["agreement"] >= result.before["agreement"]
    # The model returned holds the best epoch's weights.
    with torch.no_grad():
        ref = teacher(_images(48, 2))
        out = s(_images(48, 2))
    kl = nn.functional.kl_div(out.log_softmax(1), ref.log_softmax(1), reduction="batchmean", log_target=True)
    assert float(kl) == pytest.approx(result.best["kl"], rel=1e-4, abs=1e-6)


def test_a_run_cut_into_sittings_ends_with_the_weights_of_an_uninterrupted_run(pair, tmp_path):
    teacher, student = pair
    pool, select = _images(40, 5), _images(16, 6)
    config = _config(epochs=3, steps_per_epoch=5)
    whole = _copy(student)
    function_matching(whole, teacher, pool, select, config, checkpoint=tmp_path / "whole.pt", progress=False)

    ckpt = tmp_path / "cut.pt"
    parts = _copy(student)
    first = function_matching(parts, teacher, pool, select, config, checkpoint=ckpt, time_limit_s=0.0, progress=False)
    assert not first.finished and load_checkpoint(ckpt)["step"] == 1  # stopped after one step mid-epoch
    sittings = 1
    while True:
        resumed = _copy(student)  # a fresh process: starting weights, then the checkpoint
        result = function_matching(resumed, teacher, pool, select, config, checkpoint=ckpt,
                                   time_limit_s=None if sittings >= 3 else 0.0, progress=False)
        sittings += 1
        if result.finished:
            break
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    weights, record = best_weights(ckpt)
    assert record["epoch"] == result.best["epoch"]
    assert set(weights) == set(whole.state_dict())


def test_a_checkpoint_of_other_settings_or_another_file_is_refused(pair, tmp_path):
    teacher, student = pair
    ckpt = tmp_path / "run.pt"
    function_matching(_copy(student), teacher, _images(16, 1), _images(8, 2), _config(epochs=1, steps_per_epoch=2),
                      checkpoint=ckpt, progress=False)
    with pytest.raises(DistillationError, match="other settings"):
        function_matching(_copy(student), teacher, _images(16, 1), _images(8, 2),
                          _config(epochs=1, steps_per_epoch=2, lr=1e-3), checkpoint=ckpt, progress=False)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DistillationError, match="not a readable"):
        load_checkpoint(junk)


def test_bad_settings_are_refused():
    with pytest.raises(DistillationError):
        MatchingConfig(epochs=0)
    with pytest.raises(DistillationError, match="precision"):
        MatchingConfig(precision="fp16")
