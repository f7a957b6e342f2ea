"""A real app server for browser tests that do not need the product's models.

``python -m tests.webapp.small_app --port N`` serves :func:`webapp.ui.build_demo` for two
small AlexNets with random weights (the handlers do not care which models they run), so
the server is up in seconds instead of after a VGG16 build.
"""
from __future__ import annotations

import argparse
import copy
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> None:
    import torch

    from models import build_model
    from webapp.models import ModelPair
    from webapp.ui import build_demo, launch

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model("alexnet")
    report = {"flops_original": 6e8, "flops_compressed": 1e8, "params_original": 5e7, "params_compressed": 1e7}
    pair = ModelPair(original=model, compressed=copy.deepcopy(model), report=report, name="TEST 6x",
                     reference_name="alexnet")
    launch(build_demo(pair, repeats=1), port=args.port)


if __name__ == "__main__":
    main()
