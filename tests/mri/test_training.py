"""Training helpers and metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hscc_core.metrics import classification_report, fidelity
from hscc_mri.batch_augment import shift_augment as batch_augment
from models.alexnet import fold_batchnorm, trainable_alexnet


def test_batch_augment_flips_and_shifts_without_changing_shape_or_values():
    x = torch.rand(16, 1, 12, 12) + 1.0  # strictly positive: zero fill is visible
    out = batch_augment(x, torch.Generator().manual_seed(0), max_shift=0.25)
    assert out.shape == x.shape
    for a, b in zip(out, x):
        kept = a[a > 0]
        assert kept.numel() >= 9 * 9  # at most 3 pixels shifted out per axis
        assert torch.isin(kept, b).all()  # only moved, never altered


def test_folding_batchnorm_preserves_the_eval_output():
    torch.manual_seed(0)
    model = trainable_alexnet().train()
    for _ in range(2):
        model(torch.rand(4, 1, 128, 128))
    model.eval()
    plain = fold_batchnorm(model)
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        assert (plain(x) - model(x)).abs().max() < 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())


def test_classification_report_on_a_known_confusion():
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    y_pred = np.array([0, 0, 1, 2, 2, 2, 3, 0])
    rep = classification_report(y_true, y_pred, ["a", "b", "c", "d"], n_bootstrap=200)
    assert rep.accuracy == 0.75
    assert rep.confusion[1] == [0, 1, 1, 0]
    assert np.isclose(rep.f1[0], 2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert 0 < rep.accuracy_se < 0.3


def test_fidelity_agreement_and_kl():
    p = np.array([[0.9, 0.1], [0.2, 0.8]])
    same = fidelity(p, p)
    assert same["agreement"] == 1.0 and abs(same["mean_kl"]) < 1e-9
    flipped = fidelity(p, p[:, ::-1])
    assert flipped["agreement"] == 0.0 and flipped["mean_kl"] > 0.5


def test_training_precision_is_validated_and_resolved():
    import pytest

    from hscc_mri.training import TrainConfig, autocast_dtype

    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="float16-please")
    cpu = torch.device("cpu")
    assert autocast_dtype("float32", cpu) is None
    assert autocast_dtype("bfloat16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) in (None, torch.bfloat16)


@pytest.mark.e2e
def test_bfloat16_training_steps_learn_and_keep_float32_weights():
    from torch.utils.data import TensorDataset

    from hscc_mri.training import TrainConfig, train_classifier

    torch.manual_seed(0)
    # two separable classes: bright vs dark images
    x = torch.cat([torch.rand(32, 1, 128, 128) * 0.3, 0.7 + torch.rand(32, 1, 128, 128) * 0.3])
    y = torch.cat([torch.zeros(32, dtype=torch.int64), torch.ones(32, dtype=torch.int64)])
    data = TensorDataset(x, y)
    model = trainable_alexnet()
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-3, precision="bfloat16", batch_augment="none")
    result = train_classifier(model, data, data, config, log=lambda _: None)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert result.best_val_accuracy == 1.0


def test_affine_augment_keeps_shape_range_and_is_seeded():
    from hscc_mri.batch_augment import affine_augment, augment_batch

    x = torch.rand(8, 1, 32, 32)
    a = affine_augment(x, torch.Generator().manual_seed(5))
    b = affine_augment(x, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)  # the generator is the only source of randomness
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, x)
    assert augment_batch("none", x, torch.Generator()) is x
    with pytest.raises(ValueError, match="affine"):
        augment_batch("vertical-flip", x, torch.Generator())


def test_affine_augment_works_in_model_units_and_fills_with_black():
    from hscc_mri.batch_augment import affine_augment

    mean, std = (0.5,), (0.25,)
    x01 = torch.ones(64, 1, 24, 24)  # a white image: only the fill can be darker
    out = affine_augment((x01 - 0.5) / 0.25, torch.Generator().manual_seed(0), mean, std, rotate=30.0,
                         gamma=(1.0, 1.0), contrast=0.0, brightness=0.0, noise=0.0)
    back = out * 0.25 + 0.5
    assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6
    assert (back < 0.5).any()  # rotated corners are black (0 in [0, 1]), not model-unit zero


def test_train_recipe_resolves_its_augmentation():
    from hscc_mri.recipes import TrainRecipe

    assert TrainRecipe(data="phantoms").batch_augmentation == "shift"
    folder = TrainRecipe(data="some/folder")
    assert folder.batch_augmentation == "affine" and folder.in_memory
    scan = TrainRecipe(data="some/folder", augment="scan")
    assert scan.batch_augmentation == "shift" and not scan.in_memory
    with pytest.raises(ValueError, match="augment"):
        TrainRecipe(augment="mixup")


def test_batch_blur_matches_a_separable_convolution_and_keeps_flat_images_flat():
    import torch.nn.functional as F

    from hscc_core.views import gaussian_blur as _gaussian_blur

    x = torch.rand(3, 1, 20, 24)
    taps = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-taps**2 / (2 * 0.8**2))
    k = k / k.sum()
    want = F.conv2d(F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k.reshape(1, 1, 1, 5)), k.reshape(1, 1, 5, 1))
    torch.testing.assert_close(_gaussian_blur(x, 0.8), want, rtol=1e-5, atol=1e-6)
    flat = torch.full((2, 1, 9, 9), 0.4)
    torch.testing.assert_close(_gaussian_blur(flat, 1.1), flat)


def test_train_epochs_default_by_data():
    from hscc_mri.recipes import DEFAULT_EPOCHS, TrainRecipe

    assert TrainRecipe().epochs == DEFAULT_EPOCHS["phantoms"] == 14
    assert TrainRecipe(data="some/folder").epochs == DEFAULT_EPOCHS["folder"]
    assert TrainRecipe(data="some/folder", epochs=3).epochs == 3
