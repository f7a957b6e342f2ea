"""Send the app's example scans through a running app and print what its page shows.

    python app.py --port 7860 &
    python scripts/app_latency.py http://127.0.0.1:7860/

One request at a time, through the same ``/predict`` endpoint the page uses; prints per
scan both labels, both latencies (median of the app's timed runs) and the speed-up.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cell(html: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', html, re.S)
    return re.sub(r"<[^>]+>", "", m.group(1)).strip() if m else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:7860/")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    from webapp.ui import EXAMPLES

    client = Client(args.url, verbose=False, download_files=False)
    real_test = None
    print(f"{'scan':<28} {'compressed':<24} {'uncompressed':<24} {'ms comp':>8} {'ms orig':>8} {'speed-up':>8}")
    for path in EXAMPLES:
        _, status, _, label_c, label_o, html = client.predict([handle_file(str(path))], api_name="/predict")  # the upload takes a list (a series may be several files)
        speed = re.search(r"Speed-up on this scan: <b>([\d.]+)x", html)
        print(f"{path.name:<28} {_cell(html, 'pred-compressed'):<24} {_cell(html, 'pred-original'):<24} "
              f"{_cell(html, 'latency-compressed').removesuffix(' ms'):>8} "
              f"{_cell(html, 'latency-original').removesuffix(' ms'):>8} {speed.group(1) if speed else '?':>7}x"
              + ("" if "Models agree" in html else "   DISAGREE"))
        real_test = real_test or _cell(html, "real-test")
    print(f"page: {real_test}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
