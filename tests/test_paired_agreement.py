"""``scripts/paired_agreement.py``: the paired comparison that decides whether a distilled
candidate beats its start on the selection scans."""
from __future__ import annotations

import importlib.util
import math

import pytest

from tests.paths import ROOT

_spec = importlib.util.spec_from_file_location("paired_agreement", ROOT / "scripts" / "paired_agreement.py")
paired = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paired)


def test_mcnemar_p_is_the_exact_binomial_tail():
    assert paired.mcnemar_p(0, 0) == 1.0
    assert paired.mcnemar_p(3, 3) == 1.0
    assert paired.mcnemar_p(6, 0) == pytest.approx(2 / 64)          # all six discordant scans one way
    assert paired.mcnemar_p(9, 1) == pytest.approx(2 * 11 / 1024)   # P(X <= 1), X ~ Bin(10, 1/2), twice
    assert paired.mcnemar_p(1, 9) == paired.mcnemar_p(9, 1)


def test_compare_counts_scans_gained_and_lost_against_the_base():
    reference = [0, 1, 2, 3, 0, 1, 2, 3]
    result = {"rows": [{"name": "uncompressed", "predicted": reference, "mean_kl": 0.0},
                       {"name": "start", "predicted": [0, 1, 2, 3, 1, 1, 0, 0], "mean_kl": 0.2},   # agrees on 5
                       {"name": "distilled", "predicted": [0, 1, 2, 0, 0, 1, 2, 0], "mean_kl": 0.1}]}  # on 6
    (c,) = paired.compare(result, "start")
    assert (c["row"], c["gained"], c["lost"], c["n"]) == ("distilled", 2, 1, 8)
    assert c["difference"] == pytest.approx(1 / 8) and c["agreement"] == 6 / 8 and c["base_agreement"] == 5 / 8
    # per-scan differences: +1, +1, -1 and five zeros; the SE of their mean
    d = [1, 1, -1, 0, 0, 0, 0, 0]
    mean = sum(d) / 8
    assert c["difference_se"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in d) / 8) / math.sqrt(8))
    with pytest.raises(SystemExit, match="no row named"):
        paired.compare(result, "missing")
