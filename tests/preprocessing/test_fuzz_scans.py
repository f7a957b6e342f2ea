"""Seeded property test: mutated copies of the sample scans never break ``load_scan``.

For every case (a shipped sample with 1 to 4 byte flips, overwrites, truncations,
insertions, deletions or header-field changes), ``load_scan`` must either raise
:class:`ScanError` or return a :class:`Scan` that meets the whole contract, within
``TIME_LIMIT_S`` and ``MEMORY_LIMIT_BYTES``. Derandomised (the same cases on every run)
and without hypothesis' example database, so CI is reproducible. The longer run is
``scripts/fuzz_scans.py --cases 50000``.
"""
from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.preprocessing.fuzzing import KINDS, SAMPLE_FILES, Mutation, describe, run_case

#: Cases per sample file (10 samples: 1,500 cases).
CASES_PER_SAMPLE = 150
OUTCOMES: Counter = Counter()

mutations = st.lists(
    st.builds(Mutation, kind=st.sampled_from(KINDS), where=st.floats(0, 1, exclude_max=True),
              length=st.integers(1, 64), value=st.integers(0, 255)),
    min_size=1, max_size=4)


@settings(max_examples=CASES_PER_SAMPLE * len(SAMPLE_FILES), derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(index=st.integers(0, len(SAMPLE_FILES) - 1), changes=mutations)
def _property(index: int, changes: list[Mutation]) -> None:
    source = SAMPLE_FILES[index]
    with tempfile.TemporaryDirectory() as work:
        outcome = run_case(source, changes, Path(work))
    OUTCOMES[outcome.kind] += 1
    assert outcome.kind != "failure", f"{describe(source, changes)}: {outcome.detail}"


def test_mutated_samples_give_a_scan_error_or_a_valid_scan():
    OUTCOMES.clear()
    _property()
    assert sum(OUTCOMES.values()) >= 1500
    assert OUTCOMES["scan_error"] > 0 and OUTCOMES["read_ok"] > 0  # both paths were exercised
