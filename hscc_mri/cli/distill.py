"""``hscc-mri distill``: teach a compressed model its original's answers by function matching."""
from __future__ import annotations

import argparse
import json

from ._common import CliError, HelpFormatter

DESCRIPTION = """\
Distil a compressed artifact toward the model it was compressed from (hscc_core.function_matching):
every step draws one random view of a batch of pool scans (flips, rotation, zoom, resampling, sharpening
or blur, intensity gain and gamma, noise, mixup/CutMix) and feeds the same view to both models; the
student (only its compressed factors) learns the original's softened outputs (KL, --temperature) and its
feature map before the last pooling layer (--feature-weight). No labels are used. After every epoch the
student's agreement with the original on the --select scans decides the best epoch, which --out keeps.

The run resumes from --checkpoint when that file exists (same settings), so a long schedule can run in
several sittings: --time-limit stops it cleanly. Under torchrun each process takes its share of every
batch. Choose settings on a selection set the original was not trained on (the select half of Testing/,
data/splits/README.md), never on the set you report."""

EXAMPLE = """\
example:
  hscc-mri distill --artifact artifacts/base/vgg16-brain-mri-hscc-6x.safetensors \\
      --pool ../shared/data/brain-mri/Training --select runs/halves/select \\
      --checkpoint runs/distill/hscc6x.pt --time-limit 3600 --out artifacts/vgg16-brain-mri-hscc-6x-fm.safetensors"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``distill``."""
    from ..distillation import DEFAULT_MATCHING as d

    p = sub.add_parser("distill", help="distil a compressed model toward its original (function matching)",
                       description=DESCRIPTION, epilog=EXAMPLE, formatter_class=HelpFormatter)
    p.add_argument("--artifact", required=True, help="the compressed artifact to distil (its base model teaches)")
    p.add_argument("--pool", metavar="DIR", help="training scans (class folders; labels unused); required unless "
                                                 "--export-best")
    p.add_argument("--select", metavar="DIR",
                   help="selection scans (class folders) that choose the best epoch; required unless --export-best")
    p.add_argument("--export-best", action="store_true",
                   help="train nothing: write the best student kept in --checkpoint so far to --out (a usable model "
                        "from a run still in progress; its report says how far the run had got)")
    p.add_argument("--teacher", default=None,
                   help="the original (registry name or artifact); default: the artifact's base registry model")
    p.add_argument("--teacher-runtime", default="auto", choices=("auto", "int8", "pytorch"),
                   help="where the teacher runs on training views; auto: the release's checked int8 OpenVINO graph "
                        "of the original when it ships one (about 2x faster), else PyTorch")
    p.add_argument("--out", default=None, help="the distilled artifact, written when the schedule has run")
    p.add_argument("--checkpoint", default=None, help="resume from and keep writing this file")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the pool")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (AdamW, warm-up then cosine)")
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--feature-weight", type=float, default=d.feature_weight,
                   help="weight of the feature-map term (0: logits only)")
    p.add_argument("--mix", type=float, default=d.views.mix, help="probability of mixup/CutMix per batch")
    p.add_argument("--pool-scans", type=int, default=None, help="at most this many pool scans, class-balanced")
    p.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="training arithmetic; auto: bfloat16 autocast where the CPU has it natively")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (checkpoint kept; run again to continue)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the run's record (curve) here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Distil as ``args`` say (under torchrun: one share of every batch per process)."""
    from ..distributed import process_group_from_env

    with process_group_from_env(device=args.device, threads=args.threads) as device:
        return _run(args, device)


def _run(args: argparse.Namespace, device) -> int:
    from dataclasses import replace
    from pathlib import Path

    from hscc_core import DistillationError, HSCCError
    from hscc_core.distributed import rank

    from ..distillation import DEFAULT_MATCHING, distil_artifact, native_bf16

    if args.export_best:
        return _export_best(args)
    if not args.pool or not args.select:
        raise CliError("--pool and --select are required (unless --export-best)")
    precision = args.precision
    if precision == "auto":
        precision = "bfloat16" if (device.type == "cuda" or native_bf16()) else "float32"
    try:
        config = replace(DEFAULT_MATCHING, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                         batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
                         temperature=args.temperature, feature_weight=args.feature_weight,
                         views=replace(DEFAULT_MATCHING.views, mix=args.mix), precision=precision, seed=args.seed)
        for name in ("artifact", "pool", "select"):
            if not Path(getattr(args, name)).exists():
                raise CliError(f"--{name} {getattr(args, name)!r} does not exist")
        record = distil_artifact(args.artifact, args.pool, args.select, args.out, config, teacher=args.teacher,
                                 teacher_runtime=args.teacher_runtime,
                                 checkpoint=args.checkpoint,
                                 pool_scans=args.pool_scans, device=device, time_limit_s=args.time_limit,
                                 progress=not args.no_progress)
    except (DistillationError, HSCCError, ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    if args.json and rank() == 0:
        _write_record(args.json, record)
    if not record["finished"]:
        print(f"stopped at the time limit after {len(record['history'])} epochs in all; run the same command "
              f"again to continue from {args.checkpoint}" if args.checkpoint else "stopped at the time limit")
    return 0


def _export_best(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hscc_core import HSCCError

    from ..distillation import export_best

    if not args.checkpoint or not args.out:
        raise CliError("--export-best needs --checkpoint (the run's) and --out (the artifact to write)")
    for name in ("artifact", "checkpoint"):
        if not Path(getattr(args, name)).is_file():
            raise CliError(f"--{name} {getattr(args, name)!r} does not exist")
    try:
        record = export_best(args.artifact, args.checkpoint, args.out)
    except HSCCError as e:  # DistillationError among them
        raise CliError(str(e)) from e
    if args.json:
        _write_record(args.json, record)
    return 0


def _write_record(path: str, record: dict) -> None:
    """Write the run's JSON record to ``path`` atomically (a reader never sees half a file)."""
    from hscc_core import atomic_write

    text = json.dumps(record, indent=2)
    atomic_write(path, lambda tmp: tmp.write_text(text))
