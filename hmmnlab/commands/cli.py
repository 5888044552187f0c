"""The ``hmmnlab`` command line: one sub-command per job, every parser built here.

The options the commands share come from :mod:`hmmnlab.commands.options`: every command that runs a
model with one read (``segment``, ``trace``, ``eval``) takes the same ``--weights``, read options
(``--variant``, ``--read``, ``--mem-every``, ``--max-memory-frames``) and device options
(``--device``, ``--amp``). ``demo`` takes ``--weights``, ``--device`` and ``--dtype`` but no read
options: it runs a fixed tour of several reads (the ablation grid, stm against hmmn). ``ablate``
takes ``--weights``, the DAVIS options of ``eval`` and the device options; its ``--variants`` names
the reads to compare.

Each command's run function is ``run(args)`` of its module in :mod:`hmmnlab.commands` (one module
per command), imported only when the command runs, so building the parsers imports no torch (and no
Ray): ``hmmnlab --help`` and ``hmmnlab score`` start quickly. The library modules the commands call
know nothing of argparse, and none imports this module.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hmmnlab.commands import options


@dataclass(frozen=True)
class Runner:
    """A command's run function ``module.function(args) -> exit code``, imported when it runs."""

    module: str
    function: str

    def load(self) -> Callable[[argparse.Namespace], int]:
        return getattr(importlib.import_module(self.module), self.function)

    def __call__(self, args: argparse.Namespace) -> int:
        return self.load()(args)


@dataclass(frozen=True)
class Command:
    """One sub-command: its one-line help (``hmmnlab --help``), its description, a function that
    adds its options to its parser, and its run function."""

    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Runner


# ----------------------------------------------------------------------------------------------------
# The commands' own options


def segment_arguments(p: argparse.ArgumentParser) -> None:
    add_video_arguments(p)
    p.add_argument("--out", required=True, help="output folder for the palette PNGs")
    p.add_argument(
        "--save-probs",
        default=None,
        metavar="P.npz",
        help="also write the probabilities (array 'probs', T x (K+1) x H x W)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the PNGs an existing --out holds (and an existing --save-probs file)",
    )


def trace_arguments(p: argparse.ArgumentParser) -> None:
    add_video_arguments(p)
    p.add_argument("--frame", type=int, required=True, help="the frame to trace (>= 1)")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    """A model run on one video: the model options, ``--frames`` and ``--first-mask``."""
    options.add_model_options(p)
    p.add_argument("--frames", required=True, help="folder of frames (JPEG or PNG)")
    p.add_argument(
        "--first-mask",
        required=True,
        help="first frame's annotation: palette PNG with labels 0..K, or 0/255 PNG",
    )


def score_arguments(p: argparse.ArgumentParser) -> None:
    options.add_davis_options(p)
    p.add_argument("--pred", required=True, type=Path, help="folder of predictions")
    p.add_argument("--out", required=True, type=Path, help="folder for the two CSV files")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="count missing prediction files as empty masks instead of failing",
    )
    p.add_argument("--workers", type=int, default=1, help="number of processes (default: 1)")


def eval_arguments(p: argparse.ArgumentParser) -> None:
    options.add_dataset_options(p)
    options.add_model_options(p)
    p.add_argument(
        "--out",
        required=True,
        help="output folder (masks, CSVs, timing records; YouTube-VOS: Annotations/ and "
        "submission.zip)",
    )
    p.add_argument("--overwrite", action="store_true", help="redo finished sequences")
    p.add_argument(
        "--overlays", action="store_true", help="also write overlay JPEGs and an MP4 (DAVIS)"
    )


def ablate_arguments(p: argparse.ArgumentParser) -> None:
    options.add_davis_options(p)
    options.add_weights_option(p)
    p.add_argument(
        "--variants",
        type=options.comma_separated,
        default=None,
        metavar="A,B",
        help="the reads to compare: registered read variants (stm, kmn, hmmn, ...), labels of the "
        "default grid (hmmn-fine-none, hmmn-k8, hmmn-sigma6, ...) or all (default: stm, kmn, "
        "hmmn, hmmn-fine-none)",
    )
    p.add_argument("--out", required=True, help="output folder (ablation.csv, a folder per read)")
    options.add_device_options(p)
    p.add_argument("--overlays", action="store_true", help="also write overlay JPEGs and MP4s")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads per cell (default: torch's here, 1 per Ray task); the same N gives the "
        "same masks here and on Ray",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = p.add_argument_group('Ray (pip install "hmmnlab[cluster]")')
    group.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the (read, sequence) cells as Ray tasks: on a local Ray started here, or on the "
        "cluster at ADDRESS (e.g. auto or ray://head:10001)",
    )
    group.add_argument(
        "--ray-address", dest="ray", metavar="ADDRESS", help="the same as --ray ADDRESS"
    )
    group.add_argument(
        "--num-cpus",
        type=int,
        default=None,
        metavar="N",
        help="CPUs of the local Ray (default: all); a cell takes --threads of them",
    )


def samples_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="DAVIS-layout root to write")
    p.add_argument(
        "--youtube-vos",
        type=Path,
        default=None,
        metavar="DIR",
        help="also (or only) write a small YouTube-VOS-layout set (train, valid, "
        "valid_all_frames) to DIR: objects entering later, sparse valid annotations",
    )
    p.add_argument(
        "--num-train",
        type=int,
        default=0,
        metavar="N",
        help="also write N random training videos (listed in ImageSets/2017/train.txt)",
    )
    p.add_argument(
        "--lookalikes",
        type=Path,
        default=None,
        metavar="DIR",
        help="write a graded look-alike suite to DIR (DAVIS layout, lookalikes.json): identical "
        "objects apart, passing, grazing and crossing",
    )
    p.add_argument(
        "--num-lookalikes",
        type=int,
        default=16,
        metavar="N",
        help="videos in the --lookalikes suite (default 16: 4 per grade)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the random training videos (default 0)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write over an existing dataset in --out / --youtube-vos (its lists are replaced)",
    )


def train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for state.pth, best.pth and log.csv")
    p.add_argument(
        "--synthetic", type=int, default=0, metavar="N", help="N random synthetic training videos"
    )
    p.add_argument(
        "--synthetic-val",
        type=int,
        default=3,
        metavar="N",
        help="N held-out synthetic videos for validation (default 3)",
    )
    p.add_argument(
        "--synthetic-cache",
        default=None,
        metavar="DIR",
        help="write the synthetic videos here once (DAVIS layout) instead of in memory",
    )
    p.add_argument(
        "--lookalikes",
        type=int,
        default=0,
        metavar="N",
        help="N look-alike training videos (identical objects, hmmnlab.data.lookalikes), "
        "sampled with the synthetic ones",
    )
    p.add_argument(
        "--lookalikes-val",
        type=int,
        default=0,
        metavar="N",
        help="N held-out look-alike videos for validation (default 0)",
    )
    p.add_argument(
        "--davis",
        action="append",
        metavar="ROOT",
        help="a DAVIS-layout folder of training sequences (repeatable)",
    )
    p.add_argument(
        "--hold-out",
        default="",
        metavar="SEQ,SEQ",
        help="DAVIS sequences kept out of training and used for validation",
    )
    p.add_argument("--preset", default="demo", help="model preset (default demo)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a training setting (e.g. steps=2000, lr=2e-4, crop_size=160, "
        "batch_size=2, grad_clip=none) or model.<field>",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="start from the weights of this hmmnlab checkpoint or training state.pth (same "
        "architecture) instead of random ones",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.pth")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start a new run in an --out that holds one (its state.pth, best.pth, log.csv)",
    )
    options.add_device_options(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=("davis",), help="the dataset to fetch (davis)")
    p.add_argument("--year", required=True, type=int, choices=(2016, 2017))
    p.add_argument(
        "--resolution",
        default="480p",
        choices=("480p", "Full-Resolution"),
        help="the 2017 archive to fetch (default 480p); DAVIS 2016 has one archive (480p)",
    )
    p.add_argument(
        "--root",
        required=True,
        type=Path,
        metavar="DIR",
        help="the DAVIS folder to fill (JPEGImages, Annotations, ImageSets); the archive is kept "
        "in DIR/.downloads",
    )
    p.add_argument(
        "--url", default=None, help="fetch from this address instead of the official one"
    )
    p.add_argument(
        "--archive",
        default=None,
        type=Path,
        metavar="FILE",
        help="unpack this archive, downloaded by hand, instead of fetching one",
    )
    p.add_argument(
        "--sha256",
        default=None,
        type=download_sha256,
        metavar="HEX",
        help="refuse an archive whose sha256 differs (default: the official archive's, where known)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="unpack into a --root that already holds the dataset, replacing files that differ",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def download_sha256(text: str) -> str:
    """``--sha256``: 64 hex digits."""
    text = text.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise argparse.ArgumentTypeError(f"expected 64 hex digits, found {text!r}")
    return text


#: ``hmmnlab demo`` cuts the videos to their first 20 frames (the twins cross at 12-14);
#: hmmnlab.inside.demo_runs.DEMO_FRAMES is this number (tests/test_cli.py checks).
DEMO_FRAMES = 20


def demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    options.add_weights_option(
        p,
        required=False,
        help="registered name or checkpoint (default: $HMMNLAB_DEMO_WEIGHTS, else demo)",
    )
    p.add_argument(
        "--stm-weights",
        default="demo-stm",
        help="the model trained with the stm read, for the twins case's 'trained with each read' "
        "comparison (default demo-stm; none: leave it out)",
    )
    p.add_argument(
        "--davis", default="data_samples", help="DAVIS 2017-layout root with the samples"
    )
    options.add_device_options(p, amp=False)
    options.add_dtype_option(p)
    p.add_argument("--full", action="store_true", help="the full read grid on every sequence")
    p.add_argument(
        "--frames",
        type=int,
        default=None,
        help=f"use the first N frames of each video (default {DEMO_FRAMES}; 0 or --full: all)",
    )
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


COMMANDS: dict[str, Command] = {
    "segment": Command(
        "segment a folder of frames from the first frame's mask",
        "Segment a video (a folder of JPEG/PNG frames sorted by name) from the first frame's "
        "annotation; writes one DAVIS palette PNG per frame.",
        segment_arguments,
        Runner("hmmnlab.commands.segment", "run"),
    ),
    "trace": Command(
        "save the intermediate tensors of one frame's memory read",
        "Propagate from frame 0 and write every hook point of frame T to an .npz (see "
        "hmmnlab.inside.trace for the names, shapes and meanings).",
        trace_arguments,
        Runner("hmmnlab.commands.trace", "run"),
    ),
    "score": Command(
        "score predicted masks on a DAVIS split (J, F, official CSVs)",
        "Score a folder of predicted masks (<pred>/<sequence>/<frame>.png) against a DAVIS split "
        "with the official semi-supervised conventions; writes global_results.csv and "
        "per-sequence_results.csv into --out and prints both tables.",
        score_arguments,
        Runner("hmmnlab.commands.score", "run"),
    ),
    "eval": Command(
        "run a model over a DAVIS or YouTube-VOS split and score it",
        "Segment every sequence of a DAVIS split (resumable), write palette PNGs and the official "
        "global_results.csv / per-sequence_results.csv (with seconds per frame and peak memory). "
        "--dataset youtube-vos: write the submission layout (Annotations/<video>/<frame>.png for "
        "the frames meta.json asks for, and submission.zip); on the train split (full "
        "annotations) also score J and F locally.",
        eval_arguments,
        Runner("hmmnlab.commands.eval", "run"),
    ),
    "ablate": Command(
        "compare memory reads of the same weights on a DAVIS split (resumable; Ray optional)",
        "Segment every sequence with every read of --variants, one cell per (read, sequence), "
        "score each read and write the ablation table to OUT/ablation.csv (OUT/<read>/ holds the "
        "masks and CSVs of each read, as hmmnlab eval writes them). Finished cells are not redone. "
        "With --ray the cells run as Ray tasks, on this machine or on a cluster; the table is the "
        "same.",
        ablate_arguments,
        Runner("hmmnlab.commands.ablate", "run"),
    ),
    "samples": Command(
        "write the synthetic sample videos in DAVIS layout (or a YouTube-VOS-layout set)",
        "Write the bundled synthetic sample sequences (split 'val') to --out in the DAVIS 2017 "
        "layout; with --num-train N also N random training sequences (split 'train'). "
        "--youtube-vos DIR writes a small set in the YouTube-VOS layout (3 train and 3 valid "
        "videos of 15 frames, 96 x 160, objects that enter later).",
        samples_arguments,
        Runner("hmmnlab.commands.samples", "run"),
    ),
    "train": Command(
        "train an HMMN model (STM/HMMN recipe) on synthetic and DAVIS-layout videos",
        "Train HMMN on short clips (3 frames by default). Example: hmmnlab train --synthetic 200 "
        "--davis ../shared/data/davis2016-train-240p --hold-out bear,bmx-bumps,boat "
        "--preset demo --set steps=5000 --out runs/demo",
        train_arguments,
        Runner("hmmnlab.commands.train", "run"),
    ),
    "demo": Command(
        "a headless tour on the bundled samples, as an HTML report",
        "Segment a sample video, explain one memory read from a trace, run a small read ablation "
        "and the twins case (stm vs hmmn); write a self-contained report.html and ablation.csv "
        "to --out. A few minutes on a CPU (--full: the full grid, much longer).",
        demo_arguments,
        Runner("hmmnlab.commands.demo", "run"),
    ),
    "download": Command(
        "fetch and unpack the DAVIS archives (resumable)",
        "Download the official DAVIS archive of --year and --resolution (DAVIS 2017 trainval, or "
        "the DAVIS 2016 archive) into DIR/.downloads, resuming a partial download, check its size "
        "(and sha256 where known) and unpack it into DIR in the DAVIS layout (JPEGImages/, "
        "Annotations/, ImageSets/). Offline: download the archive by hand and give --archive FILE.",
        download_arguments,
        Runner("hmmnlab.commands.download", "run"),
    ),
}


def build_parser(*, prog: str = "hmmnlab") -> argparse.ArgumentParser:
    """The parser of every sub-command (building it imports no torch)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Learn, inspect and ablate HMMN video object segmentation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, command in COMMANDS.items():
        p = subparsers.add_parser(name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of the sub-command ``name``."""
    return build_parser()._subparsers._group_actions[0].choices[name]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"\nhmmnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"\nhmmnlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment (a full disk, a folder not writable): no traceback
        print(f"\nhmmnlab {args.command}: error: {os_error_message(err)}", file=sys.stderr)
        return 2


def os_error_message(err: OSError) -> str:
    """One line naming the file of an OSError (``records.write_error``'s wording for a full device
    or a folder that cannot be written)."""
    from hmmnlab.evaluation.records import write_error

    path = Path(err.filename) if err.filename else None
    clear = write_error(err, path) if path is not None else None
    if clear is not None:
        return str(clear)
    return f"{err.strerror or err}: {path}" if path is not None else str(err)


if __name__ == "__main__":
    sys.exit(main())
