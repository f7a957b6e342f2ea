"""Where the tests find the repository's files, and the sample scans' true classes."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
#: A few dozen real test scans of the public data set (see its README).
FIXTURES = ROOT / "tests" / "fixtures"
MINI_TESTING = FIXTURES / "brain-mri-mini" / "Testing"
#: The six real sample JPEGs and their true classes (from the file names).
SAMPLE_LABELS = {
    "Te-gl_0010.jpg": "glioma",
    "Te-gl_0011.jpg": "glioma",
    "Te-me_0016.jpg": "meningioma",
    "Te-me_0017.jpg": "meningioma",
    "Te-no_0021.jpg": "notumor",
    "Te-pi_0014.jpg": "pituitary",
}
