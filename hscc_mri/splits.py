"""The train / validation / test splits of the ``train`` command, shared with the report.

Phantoms: three independent seeded streams (distinct seeds per split, so no phantom is in
two splits), drawn once and kept in memory. A folder data set in the public four-class
layout: a stratified validation split held out of ``Training`` (un-augmented), the
``Testing`` split as the test set. :func:`materialize` keeps a data set in memory (the
phantoms always; a folder's scans when training augments whole batches).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from hscc_core.progress import progress_bar
from models import ModelSpec

__all__ = ["folder_splits", "materialize", "phantom_split_seeds", "phantom_splits"]


def materialize(dataset: Dataset, desc: str = "preparing data", dtype: torch.dtype = torch.float16,
                num_workers: int = 0) -> TensorDataset:
    """Compute every item of ``dataset`` once and keep it in memory (``dtype`` to halve RAM).

    Phantoms are expensive to draw and already randomised in pose, contrast and noise,
    so generating a fixed set once beats regenerating it every epoch; decoding real scans
    once lets training spend the cores on the model (augmentation then works on batches,
    :mod:`hscc_mri.batch_augment`). ``num_workers`` processes read items in parallel.
    """
    xs, ys = [], []
    if num_workers > 0:
        loader = DataLoader(dataset, batch_size=32, shuffle=False, num_workers=num_workers)
        for x, y in progress_bar(loader, desc=desc, unit="batch", leave=False):
            xs.extend(x.to(dtype))
            ys.extend(int(v) for v in y)
    else:
        for i in progress_bar(range(len(dataset)), desc=desc, unit="img", leave=False):
            x, y = dataset[i]
            xs.append(x.to(dtype))
            ys.append(int(y))
    return TensorDataset(torch.stack(xs), torch.tensor(ys, dtype=torch.int64))


def phantom_split_seeds(seed: int) -> dict[str, int]:
    """The phantom data-set seed of each split for the run seed ``seed``."""
    return {"train": seed * 3 + 1, "val": seed * 3 + 2, "test": seed * 3 + 3}


def phantom_splits(spec: ModelSpec, n_train: int, n_val: int, n_test: int,
                   seed: int) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """Train, validation and test phantoms for ``spec``, materialised (float16 in memory)."""
    from preprocessing.datasets import PhantomDataset

    seeds = phantom_split_seeds(seed)
    return (materialize(PhantomDataset(n_train, seeds["train"], spec), "drawing training phantoms"),
            materialize(PhantomDataset(n_val, seeds["val"], spec), "drawing validation phantoms"),
            materialize(PhantomDataset(n_test, seeds["test"], spec), "drawing test phantoms"))


def folder_splits(spec: ModelSpec, root: str | Path, val_fraction: float, seed: int,
                  in_memory: bool = False, num_workers: int = 0) -> tuple[Dataset, Dataset, Dataset]:
    """Training subset, un-augmented validation subset (stratified, seeded) and the
    ``Testing`` split of the folder data set at ``root``.

    By default the training subset augments every scan as it is read
    (:mod:`preprocessing.augment`). With ``in_memory`` all three are read once, un-augmented,
    into float16 tensors (``num_workers`` reader processes), for training that augments
    whole batches instead (:mod:`hscc_mri.batch_augment`).

    Raises:
        NotADirectoryError: ``root`` is not a folder.
    """
    from preprocessing.datasets import BrainMRIFolder, stratified_split

    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    train_plain = BrainMRIFolder(root, "Training", spec, augment=False)
    test = BrainMRIFolder(root, "Testing", spec, augment=False)
    tr_idx, val_idx = stratified_split(train_plain.targets, val_fraction, seed)
    val = Subset(train_plain, val_idx.tolist())
    if in_memory:
        return (materialize(Subset(train_plain, tr_idx.tolist()), "reading training scans", num_workers=num_workers),
                materialize(val, "reading validation scans", num_workers=num_workers),
                materialize(test, "reading test scans", num_workers=num_workers))
    train_aug = BrainMRIFolder(root, "Training", spec, augment=True)
    return Subset(train_aug, tr_idx.tolist()), val, test
