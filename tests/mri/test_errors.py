"""The product's errors are typed: a setting it cannot use is a SettingsError, data that is
missing or malformed a DataError, both ProductErrors and still ValueErrors (as the bare ones
they replaced); a release that cannot be used is a ReleaseError (also the library's
ArtifactError)."""
from __future__ import annotations

import pytest

import hscc_core
from hscc_mri import CalibrationRecipe, DataError, ProductError, SettingsError
from hscc_mri.halves import load_manifest
from hscc_mri.release import ReleaseError, load_release
from hscc_mri.runtimes import RuntimeUnavailable, resolve_choice
from hscc_mri.testset import load_test_set
from hscc_mri.training import TrainConfig
from models import ModelSpec


def test_settings_and_data_errors_are_typed_value_errors(tmp_path):
    not_json = tmp_path / "halves.json"
    not_json.write_text("{not json")
    (tmp_path / "no-classes" / "misc").mkdir(parents=True)
    spec = ModelSpec("tiny", input_size=(32, 32), channels=1)
    cases = [
        (SettingsError, "epochs", lambda: TrainConfig(epochs=0)),
        (SettingsError, "scans", lambda: CalibrationRecipe(scans=0)),
        (SettingsError, "runtime", lambda: resolve_choice("tensorrt", "fp32")),
        (DataError, "not a JSON manifest", lambda: load_manifest(not_json)),
        (DataError, "no class folders", lambda: load_test_set(tmp_path / "no-classes", spec, progress=False)),
    ]
    for kind, words, call in cases:
        with pytest.raises(kind, match=words) as caught:
            call()
        assert isinstance(caught.value, ProductError) and isinstance(caught.value, ValueError)


def test_release_and_runtime_errors_are_product_errors_too(tmp_path):
    with pytest.raises(ReleaseError, match="no release") as caught:
        load_release(tmp_path)
    assert isinstance(caught.value, ProductError) and isinstance(caught.value, hscc_core.ArtifactError)
    assert issubclass(RuntimeUnavailable, ProductError) and issubclass(RuntimeUnavailable, RuntimeError)


def test_typed_value_errors_types_bare_value_errors_only():
    from hscc_mri.errors import typed_value_errors

    with pytest.raises(DataError, match="^bad rows$") as caught:
        with typed_value_errors(DataError):
            raise ValueError("bad rows")  # what code outside the product may still raise
    assert type(caught.value.__cause__) is ValueError
    for typed in (SettingsError("s"), hscc_core.ConfigError("c"), KeyError("k")):  # typed, or no ValueError
        with pytest.raises(type(typed)) as caught:
            with typed_value_errors(DataError):
                raise typed
        assert caught.value is typed
