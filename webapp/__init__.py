"""The clinician web app behind ``python app.py``: one job per module.

* :mod:`webapp.models`: the model pair (compressed from the build-once cache, and its
  uncompressed reference) with the compression report;
* :mod:`webapp.predict`: pure functions from a scan to a side-by-side comparison
  (no UI code; testable on arrays);
* :mod:`webapp.ui`: the Gradio page and its event handlers.
"""
from __future__ import annotations
