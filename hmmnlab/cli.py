"""The ``hmmnlab`` command line: one sub-command per job.

Each sub-command lives in the module that does its work and is registered here through that module's
``register_*_command(subparsers)`` function, which adds an argparse parser whose ``func`` default runs it.
"""

from __future__ import annotations

import argparse
import sys

from hmmnlab.data.synthetic import register_samples_command
from hmmnlab.evaluate import register_eval_command
from hmmnlab.report import register_demo_command
from hmmnlab.scoring import register_score_command
from hmmnlab.segment import register_segment_command
from hmmnlab.trace import register_trace_command
from hmmnlab.train.loop import register_train_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hmmnlab",
        description="Learn, inspect and ablate HMMN video object segmentation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    # --- sub-commands (one line each) ---
    register_segment_command(subparsers)
    register_trace_command(subparsers)
    register_score_command(subparsers)
    register_eval_command(subparsers)
    register_samples_command(subparsers)
    register_train_command(subparsers)
    register_demo_command(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\nhmmnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"\nhmmnlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
