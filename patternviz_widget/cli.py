"""Command line: ``python -m patternviz_widget {demo,figures,table,reproduce} ...`` (also ``patternviz ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .defaults import THRESHOLD
from .errors import PatternVizError

DESCRIPTION = """\
patternviz-widget: watch discriminative visual patterns emerge inside image classifiers
(Li, Wang, Zhang, NeurIPS 2021) -- headless commands.

commands:
  demo      train the bundled CNN on the generated shapes data while tracking 3 layers, attack it
            with PGD, distil two students (on logits and on the last layer), save the study, write
            the paper's figures and print knowledge points per layer/epoch/condition. Resumable:
            run the same command again after an interruption and it continues.
  figures   write every figure a saved study supports (PNG/PDF/SVG) into a folder.
  table     print knowledge points per image for every (model, condition, epoch, layer).
  reproduce train the bundled model with checkpoints by iteration, fit the paper's preset, attack,
            distil, and write REPRODUCTION.md: one row per checkable claim of the paper with our
            number, the paper's and a verdict. Resumable from its output folder.

examples:
  python -m patternviz_widget demo --out demo_out
  python -m patternviz_widget demo --out /tmp/tiny --fast
  python -m patternviz_widget figures demo_out/demo.pvz --out figs --formats png,svg
  python -m patternviz_widget table demo_out/demo.pvz --threshold 0.5
  python -m patternviz_widget reproduce --out repro
"""


def _formats(text: str) -> tuple[str, ...]:
    from .figures import FORMATS

    items = tuple(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    bad = [f for f in items if "." + f not in FORMATS]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"formats must be a comma list of png, svg, pdf; got {text!r}"
        )
    return items


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every command (``--help`` documents each)."""
    parser = argparse.ArgumentParser(prog="python -m patternviz_widget", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    from . import __version__

    parser.add_argument("--version", action="version", version=f"patternviz-widget {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{demo,figures,table,reproduce}")

    demo = sub.add_parser("demo", help="train, track, attack, distil, save, write figures and a table",
                          description="Train the bundled SmallVGG on the shapes data with tracking "
                          "(3 layers, every epoch), run a PGD attack and a short distillation, save "
                          "the study to OUT/demo.pvz, write figures to OUT/figures and print a table "
                          "of knowledge points. An existing OUT/demo.pvz is continued: finished "
                          "epochs and stages are skipped and training resumes from OUT/demo_model.pt.")  # fmt: skip
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default 10; 2 with --fast)"
    )
    demo.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:0 ... (default: CUDA when present)"
    )
    demo.add_argument("--fast", action="store_true",
                      help="tiny settings (small images, few probe images, short fits) for smoke tests")  # fmt: skip
    demo.add_argument(
        "--no-attack", dest="attack", action="store_false", help="skip the PGD attack"
    )
    demo.add_argument(
        "--no-distill", dest="distill", action="store_false", help="skip distillation"
    )
    demo.add_argument("--formats", type=_formats, default=("png", "pdf"),
                      help="figure formats, comma separated (default: png,pdf)")  # fmt: skip

    figs = sub.add_parser("figures", help="write the figures of a saved study",
                          description="Write every figure STUDY supports into OUT (knowledge-point "
                          "curves, embeddings, layer strip, highlighted regions, forward construction, "
                          "ellipsoids; attack figures when it has adversarial results; distillation "
                          "figures for a teacher | student study made by pv.Study.compare).")  # fmt: skip
    figs.add_argument("study", nargs="+", help="study files written by study.save() (e.g. "
                      "demo_out/demo.pvz); with several, each gets a subfolder of OUT named after it")  # fmt: skip
    figs.add_argument("--out", required=True, help="output folder")
    figs.add_argument("--formats", type=_formats, default=("png", "pdf"), help="default: png,pdf")
    figs.add_argument("--dpi", type=int, default=300, help="PNG resolution (default 300)")
    figs.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help=f"knowledge-point threshold τ (default {THRESHOLD})",
    )

    table = sub.add_parser("table", help="print knowledge points per layer/epoch/condition",
                           description="Print mean knowledge points per image, reliable ones and "
                           "r_reliable for every (model, condition, epoch, layer) of STUDY.")  # fmt: skip
    table.add_argument("study", help="a study file")
    table.add_argument(
        "--threshold",
        type=float,
        default=THRESHOLD,
        help=f"knowledge-point threshold τ (default {THRESHOLD})",
    )

    rep = sub.add_parser("reproduce", help="measure the paper's checkable claims; write REPRODUCTION.md",
                         description="Train the bundled SmallVGG on the shapes data with checkpoints at "
                         "iterations 0, 10, 25, 50, 100, 200, 400 and the last, fit study.embed()'s defaults "
                         "on every checkpoint (every cell of a common grid), run PGD-l-inf and two distilled "
                         "students, and write OUT/REPRODUCTION.md, OUT/REPRODUCTION.json and OUT/figures. "
                         "Finished stages found in OUT with the same settings are skipped.")  # fmt: skip
    rep.add_argument(
        "--out", default="reproduce_out", help="output folder (default: reproduce_out)"
    )
    rep.add_argument(
        "--quick", action="store_true", help="tiny sizes for tests (the verdicts are not evidence)"
    )
    rep.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bars"
    )
    rep.add_argument(
        "--threads", type=int, default=None, help="torch threads for the fits (default: torch's)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "demo":
            from ._demo import run_demo

            run_demo(out=args.out, epochs=args.epochs, device=args.device, fast=args.fast,
                     attack=args.attack, distill=args.distill, formats=args.formats, log=_print)  # fmt: skip
        elif args.command == "figures":
            from .figures.batch import write_figures

            for path in args.study:
                out = Path(args.out) if len(args.study) == 1 else Path(args.out) / Path(path).stem
                write_figures(path, out, formats=args.formats, dpi=args.dpi,
                              threshold=args.threshold, log=_print)  # fmt: skip
        elif args.command == "table":
            from .figures import format_table, knowledge_table

            _print(format_table(knowledge_table(args.study, threshold=args.threshold)))
        elif args.command == "reproduce":
            from .reproduction import reproduce

            cmd = "python -m patternviz_widget " + " ".join(
                argv if argv is not None else sys.argv[1:]
            )
            result = reproduce(out=args.out, quick=args.quick, progress=args.progress, log=_print, command=cmd,
                               threads=args.threads)  # fmt: skip
            _print("")
            _print(result.markdown.split("\n## Criteria")[0])
    except KeyboardInterrupt:
        _print("interrupted: run the same command again to continue where it stopped.")
        return 130
    except PatternVizError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


def _print(text: str) -> None:
    print(text, flush=True)
