"""A user sending a hostile file holds up no other user (issue 26, deliverable 1): a small
version of ``scripts/load_test.py`` against the real app.

Nine users each send one real scan at once, without a hostile user (before and after),
and while a tenth keeps sending one of the two files that were the slowest to refuse in
the script's probe (``reports/real/load-test.json``): a gzip NIfTI of the largest accepted
size that turns out blank (read in a child process, then refused), and a file over the
upload limit sent by a client that ignores the limit (refused by the server while it
arrives). The hostile file must be refused with a plain message, every real scan answered,
and the users' median wait stay within twice the baseline measured here.
"""
from __future__ import annotations

import sys

import pytest

from tests.webapp.app_server import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import load_test as lt  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

#: Nine users to one hostile, as in the issue's bound: with three users (tried: 3 x 2 scans)
#: the hostile user is a quarter of the load instead of a tenth, and the over-limit upload,
#: which costs the 2 shared cores ~3 s of CPU each (server and client), made the others'
#: median 2.45x the baseline. One scan each keeps the test to 9 requests a phase.
USERS, SCANS = 9, 1
#: Case -> words its refusal must hold (the app's message names the file and says why).
HOSTILE = {
    "nifti-gzip-largest.nii.gz": (lt.REFUSED, "nifti-gzip-largest.nii.gz", "blank"),
    "dicom-pad-1.9g.dcm": ("HTTP 413", "maximum allowed size"),
}
#: Allowed on top of twice the baseline median. Nine requests a phase on 2 CPU cores that
#: other jobs share: one request more or less ahead in the queue moves a median by about
#: one request's model time (~1-1.5 s here), whatever the hostile user does.
SLACK_S = 1.0
#: The per-request limit of the app (``--read-timeout``): no refusal may take longer.
READ_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory):
    cases = lt.hostile_inputs(tmp_path_factory.mktemp("hostile"))
    return {name: cases[name] for name in HOSTILE}


def test_a_hostile_user_does_not_hold_up_the_others(app_server, hostile_files):
    clients = [lt.new_client(app_server.url) for _ in range(USERS)]
    scans = lt.real_scans()
    assert lt.send(clients[0], [scans[0][0]], 300).kind == "answered"  # warm-up: the read server starts
    for files in hostile_files.values():  # as the script's probe: the first over-limit upload is the slowest
        lt.send(clients[0], files, 300)
    phases = [lt.BASELINE, *map(lt.hostile_phase, HOSTILE), lt.BASELINE]  # baseline before and after
    runs = []
    with lt.HostileUser(app_server.url, timeout=300) as hostile:
        for i, phase in enumerate(phases):
            case = None if phase == lt.BASELINE else phase.split(":", 1)[1]
            runs.append(lt.run_phase(phase, clients, scans, SCANS, hostile if case else None,
                                     hostile_files.get(case), timeout=300, offset=i * USERS * SCANS))
    summary = {p: lt.summarise(runs, p) for p in dict.fromkeys(phases)}
    base = summary[lt.BASELINE]
    report = "\n".join(f"{p}: median {s['wait']['median_s']:.2f} s, p90 {s['wait']['p90_s']:.2f} s, "
                       f"hostile {s['hostile']}" for p, s in summary.items())
    print("\n" + report)
    assert base["errors"] == 0 and base["answered"] == 2 * USERS * SCANS, report
    for case, words in HOSTILE.items():
        s = summary[lt.hostile_phase(case)]
        assert s["errors"] == 0 and s["answered"] == USERS * SCANS, report
        h = s["hostile"]
        assert h["requests"] >= 1 and h["refused"] == h["requests"], report
        assert h["time_to_refusal"]["max_s"] < READ_TIMEOUT_S, report
        for message in h["messages"]:
            assert all(w in message for w in words), message
        assert s["wait"]["median_s"] <= 2 * base["wait"]["median_s"] + SLACK_S, report
