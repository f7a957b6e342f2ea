"""Copy the small real-scan subsets the repository ships from the public data set.

* ``data/calibration/brain-mri/<class>/``: the default calibration set of the pretrained
  VGG16 — ``--calib-per-class`` scans of each class drawn (seeded) from the *training*
  part of ``Training/`` (the stratified 10% validation split of ``train --data``, seed 0,
  is left out, so every choice measured on it stays honest). Files are listed in
  ``manifest.json`` in draw order: the first ``k`` of each class form the smaller sets
  compared in ``scripts/calibration_curve.py``.
* ``tests/fixtures/brain-mri-mini/Testing/<class>/``: ``--fixture-per-class`` scans of each
  class of ``Testing/`` (seeded), the end-to-end test set of ``evaluate --data`` in CI.

    python scripts/make_real_subsets.py --data ../shared/data/brain-mri
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import BRAIN_TUMOUR_CLASSES, ModelSpec  # noqa: E402
from preprocessing.datasets import BrainMRIFolder, stratified_split  # noqa: E402

_SPEC = ModelSpec(name="subset")


def calibration_draw(data: str | Path, per_class: int, seed: int = 1) -> list[tuple[Path, str]]:
    """``per_class`` training scans of each class, not in the validation split, in draw order."""
    folder = BrainMRIFolder(data, "Training", _SPEC)
    train_idx, _ = stratified_split(folder.targets, 0.1, 0)
    rng = np.random.default_rng(seed)
    out = []
    for c, name in enumerate(BRAIN_TUMOUR_CLASSES):
        idx = [int(i) for i in train_idx if folder.targets[i] == c]
        out += [(folder.samples[i][0], name) for i in rng.choice(idx, per_class, replace=False)]
    return out


def fixture_draw(data: str | Path, per_class: int, seed: int = 2) -> list[tuple[Path, str]]:
    folder = BrainMRIFolder(data, "Testing", _SPEC)
    rng = np.random.default_rng(seed)
    out = []
    for c, name in enumerate(BRAIN_TUMOUR_CLASSES):
        idx = [i for i, t in enumerate(folder.targets) if t == c]
        out += [(folder.samples[i][0], name) for i in sorted(rng.choice(idx, per_class, replace=False))]
    return out


def copy_all(files: list[tuple[Path, str]], dest: Path) -> list[dict[str, str]]:
    if dest.exists():
        shutil.rmtree(dest)
    manifest = []
    for src, cls in files:
        target = dest / cls / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        manifest.append({"file": f"{cls}/{src.name}", "class": cls,
                         "sha256": hashlib.sha256(target.read_bytes()).hexdigest()})
    return manifest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the public data set (Training/, Testing/)")
    ap.add_argument("--calib-per-class", type=int, default=64)
    ap.add_argument("--fixture-per-class", type=int, default=8)
    args = ap.parse_args()
    calib_dir = ROOT / "data" / "calibration" / "brain-mri"
    readme = (calib_dir / "README.md").read_text() if (calib_dir / "README.md").is_file() else None
    manifest = copy_all(calibration_draw(args.data, args.calib_per_class), calib_dir)
    (calib_dir / "manifest.json").write_text(json.dumps({"per_class": args.calib_per_class, "seed": 1,
                                                         "files": manifest}, indent=1) + "\n")
    if readme:
        (calib_dir / "README.md").write_text(readme)
    fixture = ROOT / "tests" / "fixtures" / "brain-mri-mini" / "Testing"
    copy_all(fixture_draw(args.data, args.fixture_per_class), fixture)
    print(f"{len(manifest)} calibration scans -> {calib_dir}; {4 * args.fixture_per_class} test scans -> {fixture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
