"""The ``select`` / ``report`` halves of a real test folder (:mod:`hscc_mri.halves`).

Real scans throughout: the 32 real test JPEGs of ``tests/fixtures/brain-mri-mini`` plus
near-duplicates made from two of them (a few grey levels brighter, a little noise), one
of them filed under another class; and the committed manifest of the real ``Testing/``
(checked for consistency only: CI has no copy of the data set).
"""
from __future__ import annotations

import json
import re
import shutil
from collections import Counter, defaultdict

import numpy as np
import pytest
from PIL import Image

from hscc_mri.halves import (HALVES, NEAR_DUPLICATE_CORRELATION, correlation_matrix, half_files, load_manifest,
                             make_halves, materialize, near_duplicate_groups, write_manifest)

from tests.paths import MINI_TESTING, ROOT

COMMITTED = ROOT / "data" / "splits" / "testing-halves.json"
#: (source scan, class folder of the copy, copy name, grey-level shift, noise sigma)
COPIES = [
    ("glioma/Te-gl_0027.jpg", "glioma", "dup-a.jpg", 4, 0.0),
    ("glioma/Te-gl_0027.jpg", "glioma", "dup-b.jpg", 0, 3.0),
    ("glioma/Te-gl_0027.jpg", "glioma", "dup-c.jpg", -3, 2.0),
    ("pituitary/Te-pi_0069.jpg", "meningioma", "dup-pi.jpg", 2, 2.0),  # a group spanning two classes
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The mini test folder plus the near-duplicate copies of :data:`COPIES`."""
    root = tmp_path_factory.mktemp("halves") / "Testing"
    shutil.copytree(MINI_TESTING, root)
    rng = np.random.default_rng(0)
    for src, cls, name, shift, sigma in COPIES:
        grey = np.asarray(Image.open(MINI_TESTING / src).convert("L"), dtype=np.float64)
        grey = np.clip(grey + shift + rng.normal(0.0, sigma, grey.shape), 0, 255).astype(np.uint8)
        Image.fromarray(grey).save(root / cls / name, quality=95)
    return root


@pytest.fixture(scope="module")
def manifest(folder):
    return make_halves(folder, seed=0)


def _by_file(doc):
    return {e["file"]: e for e in doc["files"]}


def test_copies_are_near_duplicates(folder):
    for src, cls, name, _, _ in COPIES:
        corr = correlation_matrix([folder / src, folder / cls / name])
        assert corr[0, 1] >= NEAR_DUPLICATE_CORRELATION


def test_union_find_links_chains():
    corr = np.eye(5)
    corr[0, 3] = corr[3, 0] = 0.98
    corr[3, 4] = corr[4, 3] = 0.97
    corr[1, 2] = corr[2, 1] = 0.969
    assert near_duplicate_groups(corr, 0.97) == [0, 1, 2, 0, 0]


def test_near_duplicates_stay_together(manifest):
    files = _by_file(manifest)
    for src, cls, name, _, _ in COPIES:
        a, b = files[src], files[f"{cls}/{name}"]
        assert a["group"] == b["group"] and a["half"] == b["half"]
    groups = manifest["groups"]
    assert groups["n_multi"] == 2 and groups["sizes"] == {"2": 1, "4": 1}
    assert groups["n_cross_class"] == 1
    assert groups["cross_class"][0]["classes"] == {"meningioma": 1, "pituitary": 1}
    assert groups["max_correlation_between_halves"] < NEAR_DUPLICATE_CORRELATION
    halves_of_group = defaultdict(set)
    for e in manifest["files"]:
        halves_of_group[e["group"]].add(e["half"])
    assert all(len(h) == 1 for h in halves_of_group.values())


def test_stratified_within_one(manifest):
    totals = Counter(e["class"] for e in manifest["files"])
    assert totals == {"glioma": 11, "meningioma": 9, "notumor": 8, "pituitary": 8}
    for half in HALVES:
        counted = Counter(e["class"] for e in manifest["files"] if e["half"] == half)
        assert counted == manifest["counts"][half]
        for cls, n in totals.items():
            assert abs(counted[cls] - n / 2) <= 1, (half, cls, counted[cls], n)


def test_deterministic_under_the_seed(folder, manifest):
    assert make_halves(folder, seed=0) == manifest
    others = [make_halves(folder, seed=s)["files"] for s in (1, 2)]
    assert any([e["half"] for e in o] != [e["half"] for e in manifest["files"]] for o in others)


def test_manifest_round_trip(manifest, folder, tmp_path):
    path = write_manifest(manifest, tmp_path / "splits" / "halves.json")
    text = path.read_text()
    assert str(folder) not in text and str(tmp_path) not in text
    assert load_manifest(path) == manifest
    assert manifest["source"] == f"{folder.parent.name}/Testing"
    assert [e["file"] for e in manifest["files"]] == sorted(e["file"] for e in manifest["files"])
    path.write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ValueError, match="format_version"):
        load_manifest(path)


def test_half_files_refuses_a_changed_or_missing_file(manifest, folder, tmp_path):
    root = tmp_path / "Testing"
    shutil.copytree(folder, root)
    select = half_files(manifest, "select", root)
    assert [p.relative_to(root).as_posix() for p in select] == [
        e["file"] for e in manifest["files"] if e["half"] == "select"]
    victim = select[0]
    rel = victim.relative_to(root).as_posix()
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=re.escape(rel) + ".*changed"):
        half_files(manifest, "select", root)
    assert len(half_files(manifest, "select", root, verify=False)) == len(select)
    victim.unlink()
    with pytest.raises(ValueError, match=re.escape(rel) + ".*missing"):
        half_files(manifest, "select", root, verify=False)
    with pytest.raises(ValueError, match="no half"):
        half_files(manifest, "validation", root)


def test_materialize_lays_out_class_folders(manifest, folder, tmp_path):
    out = tmp_path / "halves"
    (out / "select" / "glioma").mkdir(parents=True)
    (out / "select" / "glioma" / "stale.jpg").write_bytes(b"left over")  # replaced, never mixed in
    made = materialize(manifest, folder, out)
    assert made == {h: out / h for h in HALVES}
    for half in HALVES:
        found = sorted(p.relative_to(out / half).as_posix() for p in (out / half).rglob("*") if p.is_file())
        expected = sorted(f"{e['class']}/{e['file'].split('/', 1)[1]}" for e in manifest["files"]
                          if e["half"] == half)
        assert found == expected
        for e in manifest["files"]:
            if e["half"] == half:
                assert (out / half / e["class"] / e["file"].split("/", 1)[1]).read_bytes() == \
                    (folder / e["file"]).read_bytes()
    # the copy filed under meningioma/ stays a meningioma scan in whichever half it went to
    dup = _by_file(manifest)["meningioma/dup-pi.jpg"]
    assert (out / dup["half"] / "meningioma" / "dup-pi.jpg").is_file()
    (out / "report" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="notes.txt"):
        materialize(manifest, folder, out, halves=("report",))


def test_committed_manifest_is_consistent():
    doc = load_manifest(COMMITTED)
    files = doc["files"]
    assert len(files) == 656 and doc["source"] == "brain-mri/Testing"
    assert doc["near_duplicate_correlation"] == NEAR_DUPLICATE_CORRELATION and doc["seed"] == 0
    assert [e["file"] for e in files] == sorted(e["file"] for e in files)
    assert len({e["file"] for e in files}) == 656
    totals = Counter(e["class"] for e in files)
    assert totals == {"glioma": 150, "meningioma": 153, "notumor": 203, "pituitary": 150}
    for half in HALVES:
        counted = Counter(e["class"] for e in files if e["half"] == half)
        assert counted == doc["counts"][half]
        for cls, n in totals.items():
            assert abs(counted[cls] - n / 2) <= 2
    halves_of_group = defaultdict(set)
    for e in files:
        assert re.fullmatch(r"[0-9a-f]{64}", e["sha256"])
        assert e["file"].split("/")[0] == e["class"] and not e["file"].startswith("/")
        halves_of_group[e["group"]].add(e["half"])
    assert all(len(h) == 1 for h in halves_of_group.values())
    sizes = Counter(e["group"] for e in files)
    assert doc["groups"]["n_groups"] == len(sizes)
    assert doc["groups"]["n_multi"] == sum(1 for n in sizes.values() if n > 1)
