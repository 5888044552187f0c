"""The ``hmmnlab`` command line: one sub-command per job.

Each sub-command lives in the module that does its work and is registered here through that module's
``register_*_command(subparsers)`` function, which adds an argparse parser whose ``func`` default runs it.

Only the module of the command being run is imported (the others get a one-line placeholder for the
command list), so ``hmmnlab --help`` and ``hmmnlab score`` start without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, register function, one-line help shown in ``hmmnlab --help``); the help must
# be the one the module's parser gives (tests/test_cli.py checks it).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "segment": ("hmmnlab.segment", "register_segment_command",
                "segment a folder of frames from the first frame's mask"),
    "trace": ("hmmnlab.trace", "register_trace_command",
              "save the intermediate tensors of one frame's memory read"),
    "score": ("hmmnlab.scoring", "register_score_command",
              "score predicted masks on a DAVIS split (J, F, official CSVs)"),
    "eval": ("hmmnlab.evaluate", "register_eval_command",
             "run a model over a DAVIS split and score it"),
    "samples": ("hmmnlab.data.synthetic", "register_samples_command",
                "write the synthetic sample videos (and optional training videos) in DAVIS layout"),
    "train": ("hmmnlab.train.loop", "register_train_command",
              "train an HMMN model (STM/HMMN recipe) on synthetic and DAVIS-layout videos"),
    "demo": ("hmmnlab.report", "register_demo_command",
             "a headless tour on the bundled samples, as an HTML report"),
}  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every sub-command registered in full, or only ``command`` (the others as
    placeholders that list it in ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="hmmnlab",
        description="Learn, inspect and ablate HMMN video object segmentation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module, register, help_text) in COMMANDS.items():
        if command is None or name == command:
            getattr(importlib.import_module(module), register)(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def command_of(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (its first argument that is not an option), if known."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_of(argv)
    # `hmmnlab --help` (no command): placeholders only, nothing heavy is imported
    parser = build_parser(command) if command else build_parser("")
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
