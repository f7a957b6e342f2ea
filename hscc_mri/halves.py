"""The ``select`` and ``report`` halves of a real class-folder test set (``Testing/``).

Every tuning choice (recipes, epochs, thresholds) is made on ``select``; ``report`` is
evaluated once per final candidate and gives the numbers the project reports. The halves
are drawn like the half of the public test split the team keeps back: stratified by
class, with near-duplicate images kept on the same side.

* Near-duplicates: every scan is read grey (:func:`preprocessing.load_scan`), area-resized
  to 32x32 and standardised (zero mean, unit norm); two scans whose Pearson correlation
  is at least :data:`NEAR_DUPLICATE_CORRELATION` are linked, and the connected components
  of these links (adjacent slices of one patient, mostly) are the groups. A group is
  never split; a group spanning classes counts for its majority class when it is placed.
* Assignment (seeded): per class, its groups are shuffled, the largest put first
  (stable), and each goes to the half whose count for that class is furthest below its
  target (half of the class, the odd scan to ``select``); the deficit of a group spanning
  classes is summed over all its scans.

The result is a JSON manifest (:func:`make_halves`, :func:`write_manifest`) naming each
file by its POSIX path relative to the test folder with its SHA-256, class, half and
group; the images themselves stay where they are. :func:`half_files` lists one half
(verifying the hashes) and :func:`materialize` lays the halves out as class folders
(``<out>/select/<class>/...``), so every tool that takes a class-folder test set
(``hscc-mri evaluate --data <out>/report``) runs on one half unchanged.
"""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import cv2
import numpy as np

from hscc_core import atomic_write, file_sha256

from .errors import DataError, SettingsError


__all__ = ["FORMAT_VERSION", "HALVES", "NEAR_DUPLICATE_CORRELATION", "THUMBNAIL_SIZE", "correlation_matrix",
           "half_files", "load_manifest", "make_halves", "materialize", "near_duplicate_groups",
           "write_manifest"]

#: Pearson correlation at 32x32 px from which two scans count as near-duplicates.
NEAR_DUPLICATE_CORRELATION = 0.97
#: Side of the area-resized thumbnails the correlation is measured on.
THUMBNAIL_SIZE = 32
#: The halves, in the order the odd scan of a class is given (``select`` first).
HALVES = ("select", "report")
#: Version of the manifest layout (``manifest["format_version"]``).
FORMAT_VERSION = 1

_METHOD = (f"Each scan read grey (preprocessing.load_scan), area-resized to {THUMBNAIL_SIZE}x{THUMBNAIL_SIZE} "
           "(cv2.INTER_AREA, float32) and standardised (zero mean, unit norm); scans with a Pearson correlation "
           ">= near_duplicate_correlation are linked and the connected components are the groups (never split; "
           "a group spanning classes counts for its majority class). Per class, the groups are shuffled with "
           "the seed, the largest put first (stable), and each goes to the half whose count for that class is "
           "furthest below its target (half the class, the odd scan to select; the deficit of a group "
           "spanning classes is summed over its scans; ties to select).")


# ----------------------------------------------------------------------------- listing
def _scan_files(testing_dir: Path) -> list[tuple[str, str, Path]]:
    """``(relative POSIX path, canonical class, path)`` of every scan file, sorted by path.

    Raises:
        FileNotFoundError: ``testing_dir`` is not a folder.
        DataError: a folder that is not a known class spelling, or no scan files.
    """
    from preprocessing.datasets import canonical_class_name, is_scan_file

    if not testing_dir.is_dir():
        raise FileNotFoundError(f"test folder {str(testing_dir)!r} does not exist or is not a folder")
    folders = sorted(p for p in testing_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if canonical_class_name(p.name) is None]
    if unknown:
        raise DataError(f"{testing_dir.name!r} holds folders that are not class names: {', '.join(unknown)}")
    out = []
    for folder in folders:
        cls = canonical_class_name(folder.name)
        for path in folder.rglob("*"):
            if is_scan_file(path):
                out.append((path.relative_to(testing_dir).as_posix(), cls, path))
    if not out:
        raise DataError(f"no scan files in the class folders of {testing_dir.name!r}")
    return sorted(out)


# ----------------------------------------------------------------------------- near-duplicates
def _thumbnail(path: Path) -> np.ndarray:
    """The standardised ``THUMBNAIL_SIZE**2`` float64 vector of one scan (zeros if constant)."""
    from preprocessing import load_scan

    image = np.ascontiguousarray(load_scan(path).image(), dtype=np.float32)
    small = cv2.resize(image, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    v = small.astype(np.float64).ravel()
    v -= v.mean()
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def correlation_matrix(paths: Iterable[str | os.PathLike[str]]) -> np.ndarray:
    """Pairwise Pearson correlation of the scans' 32x32 area-resized grey thumbnails.

    Args:
        paths: scan files (anything :func:`preprocessing.load_scan` reads).

    Returns:
        ``(N, N)`` float64 matrix (1 on the diagonal; 0 in the rows of constant images).

    Raises:
        preprocessing.ScanError: a file cannot be read (the message names it).
    """
    x = np.stack([_thumbnail(Path(p)) for p in paths])
    return x @ x.T


def near_duplicate_groups(corr: np.ndarray, threshold: float = NEAR_DUPLICATE_CORRELATION) -> list[int]:
    """Group index of each item: connected components of the pairs with ``corr >= threshold``.

    Groups are numbered by their first item (item order), so the numbering is stable.
    """
    n = len(corr)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(corr >= threshold, k=1))):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    ids: dict[int, int] = {}
    return [ids.setdefault(find(i), len(ids)) for i in range(n)]


# ----------------------------------------------------------------------------- assignment
def _majority(classes: list[str]) -> str:
    counts = Counter(classes)
    return min(counts, key=lambda c: (-counts[c], c))


def _assign(groups: dict[int, list[int]], classes: list[str], seed: int) -> dict[int, str]:
    """Half of each group (see the module docstring)."""
    rng = np.random.default_rng(seed)
    totals = Counter(classes)
    target = {"select": {c: (n + 1) // 2 for c, n in totals.items()},
              "report": {c: n // 2 for c, n in totals.items()}}
    count: dict[str, Counter[str]] = {h: Counter() for h in HALVES}
    by_class: dict[str, list[int]] = {}
    for g, members in sorted(groups.items()):
        by_class.setdefault(_majority([classes[i] for i in members]), []).append(g)
    half_of: dict[int, str] = {}
    for cls in sorted(by_class):
        order = [by_class[cls][k] for k in rng.permutation(len(by_class[cls]))]
        order.sort(key=lambda g: -len(groups[g]))  # stable: shuffled within a size
        for g in order:
            member_classes = [classes[i] for i in groups[g]]
            deficit = {h: sum(target[h][c] - count[h][c] for c in member_classes) for h in HALVES}
            half = max(HALVES, key=lambda h: deficit[h])  # ties: the first, select
            half_of[g] = half
            count[half].update(member_classes)
    return half_of


def make_halves(testing_dir: str | os.PathLike[str], seed: int = 0,
                threshold: float = NEAR_DUPLICATE_CORRELATION) -> dict[str, Any]:
    """Split a class-folder test set into ``select`` and ``report`` halves.

    Args:
        testing_dir: the test folder holding one folder per class (e.g.
            ``.../brain-mri/Testing``); class folders may use the usual spellings.
        seed: seed of the group shuffle.
        threshold: correlation from which two scans are near-duplicates.

    Returns:
        The manifest: ``format_version``, ``source`` (``"<data-set>/<test folder>"``, base
        names only), ``method``, ``near_duplicate_correlation``, ``seed``, ``counts``
        (half -> class -> scans), ``groups`` (statistics of the near-duplicate groups) and
        ``files`` (``{"file", "sha256", "class", "half", "group"}`` sorted by file).

    Raises:
        FileNotFoundError: ``testing_dir`` is not a folder.
        DataError: a folder that is not a class name, or no scan files.
        preprocessing.ScanError: a scan cannot be read.
    """
    root = Path(os.fspath(testing_dir)).resolve()
    files = _scan_files(root)
    classes = [cls for _, cls, _ in files]
    corr = correlation_matrix(path for _, _, path in files)
    group_of = near_duplicate_groups(corr, threshold)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(group_of):
        groups.setdefault(g, []).append(i)
    half_of = _assign(groups, classes, seed)
    halves = np.array([half_of[g] for g in group_of])
    class_names = sorted(set(classes))
    counts = {h: {c: sum(1 for i, cls in enumerate(classes) if cls == c and halves[i] == h) for c in class_names}
              for h in HALVES}
    multi = [m for m in groups.values() if len(m) > 1]
    cross = [{"group": group_of[m[0]], "classes": dict(sorted(Counter(classes[i] for i in m).items())),
              "half": str(halves[m[0]])}
             for m in multi if len({classes[i] for i in m}) > 1]
    between = corr[np.ix_(halves == "select", halves == "report")]
    stats = {
        "n_groups": len(groups),
        "n_multi": len(multi),
        "n_files_in_multi": sum(len(m) for m in multi),
        "sizes": {str(s): n for s, n in sorted(Counter(len(m) for m in multi).items())},
        "largest": max((len(m) for m in multi), default=1),
        "n_cross_class": len(cross),
        "cross_class": cross,
        "max_correlation_between_halves": float(between.max()) if between.size else None,
    }
    return {
        "format_version": FORMAT_VERSION, "source": f"{root.parent.name}/{root.name}", "method": _METHOD,
        "near_duplicate_correlation": threshold, "seed": seed, "counts": counts, "groups": stats,
        "files": [{"file": rel, "sha256": file_sha256(path), "class": cls, "half": str(halves[i]),
                   "group": group_of[i]}
                  for i, (rel, cls, path) in enumerate(files)],
    }


# ----------------------------------------------------------------------------- manifest file
def write_manifest(manifest: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``manifest`` as indented JSON at ``path`` (atomically); returns the path."""
    out = Path(os.fspath(path))
    text = json.dumps(manifest, indent=1) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))
    return out


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a manifest written by :func:`write_manifest`.

    Raises:
        FileNotFoundError: no such file.
        DataError: not JSON, another ``format_version``, or no ``files`` list.
    """
    p = Path(os.fspath(path))
    try:
        doc = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{p.name} is not a JSON manifest: {e}") from None
    if not isinstance(doc, dict) or doc.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{p.name} is not a test-halves manifest of format_version {FORMAT_VERSION}")
    if not isinstance(doc.get("files"), list):
        raise DataError(f"{p.name} has no 'files' list")
    return doc


# ----------------------------------------------------------------------------- using a half
def half_files(manifest: Mapping[str, Any], half: str, testing_dir: str | os.PathLike[str],
               verify: bool = True) -> list[Path]:
    """The files of one half, in manifest order (sorted by relative path).

    Args:
        manifest: from :func:`make_halves` or :func:`load_manifest`.
        half: ``"select"`` or ``"report"``.
        testing_dir: the test folder the manifest was made from.
        verify: check each file's SHA-256 against the manifest.

    Raises:
        SettingsError: ``half`` is not a half.
        DataError: a file is missing or (with ``verify``) its SHA-256 differs from the
            manifest's (the message names the file).
    """
    if half not in HALVES:
        raise SettingsError(f"no half {half!r}: the halves are {', '.join(HALVES)}")
    root = Path(os.fspath(testing_dir))
    out = []
    for entry in manifest["files"]:
        if entry["half"] != half:
            continue
        path = root.joinpath(*entry["file"].split("/"))
        if not path.is_file():
            raise DataError(f"{entry['file']} of the {half} half is missing from {root.name!r}")
        if verify and file_sha256(path) != entry["sha256"]:
            raise DataError(f"{entry['file']} of the {half} half has changed: its SHA-256 is not the "
                            f"manifest's {entry['sha256'][:12]}...")
        out.append(path)
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def materialize(manifest: Mapping[str, Any], testing_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                halves: Iterable[str] = HALVES) -> dict[str, Path]:
    """Lay each half out as a class-folder test set: ``out_dir/<half>/<class>/<file>``.

    Files are verified (SHA-256) first, then hard-linked (copied where a link is not
    possible). Each half's folder is built beside its final place and swapped in whole,
    so it never mixes files of two manifests; an existing ``out_dir/<half>`` is replaced
    only if it holds nothing but class folders.

    Returns:
        half -> its folder.

    Raises:
        SettingsError, DataError: as :func:`half_files`.
        DataError: ``out_dir/<half>`` exists and holds something other than class folders.
    """
    from preprocessing.datasets import canonical_class_name

    root = Path(os.fspath(testing_dir))
    out = Path(os.fspath(out_dir))
    made = {}
    for half in halves:
        files = half_files(manifest, half, root, verify=True)
        final = out / half
        if final.exists():
            strays = [p.name for p in final.iterdir() if not (p.is_dir() and canonical_class_name(p.name))]
            if strays:
                raise DataError(f"{final} holds {', '.join(sorted(strays))}, not only class folders; "
                                "not replacing it")
        tmp = out / f".{half}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        by_file = {e["file"]: e["class"] for e in manifest["files"]}
        try:
            for path in files:
                rel = path.relative_to(root).as_posix()
                inner = rel.split("/", 1)[1]  # below the class folder
                _link_or_copy(path, tmp / by_file[rel] / inner)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        made[half] = final
    return made
