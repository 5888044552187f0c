"""Command-line option groups shared by the commands.

Every command that runs a model with one memory read (``segment``, ``trace``, ``eval``) takes the
same options from :func:`add_model_options`: ``--weights``, the read options (``--variant``,
``--read KEY=VALUE``, ``--mem-every``, ``--max-memory-frames``) and the device options
(``--device``, ``--amp``); :func:`read_config` turns them into a
:class:`~hmmnlab.config.ReadConfig`. The ``--variant`` choices are the read registry's names
(:data:`hmmnlab.model.reads.KERNELS`), looked up when the command line is parsed, so a variant
registered at run time is accepted.

The dataset a command reads is ``--root ROOT`` (``--davis ROOT`` is the same option, its older
name):
:func:`add_davis_options` for a DAVIS split (``score``), :func:`add_dataset_options` for DAVIS or
YouTube-VOS (``eval --dataset davis|youtube-vos``), checked by :func:`check_dataset_options`.

The ``key=value`` items of ``--read`` and ``--set`` are parsed by
:func:`hmmnlab.config.parse_fields`.

Nothing heavy is imported here (no torch): ``hmmnlab --help`` builds every parser with these groups.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

from hmmnlab.config import ReadConfig, field_defaults, parse_fields

# ----------------------------------------------------------------------------------------------------
# Option groups


class RegistryNames:
    """The names of a registry (a dict in a module), looked up whenever they are asked for.

    As argparse ``choices``: building a parser imports nothing, and a name registered after the
    parser was built is accepted."""

    def __init__(self, module: str, registry: str) -> None:
        self.module, self.registry = module, registry

    def names(self) -> list[str]:
        return list(getattr(importlib.import_module(self.module), self.registry))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"RegistryNames({self.module}.{self.registry}: {self.names()})"


#: The r4 read variants: :data:`hmmnlab.model.reads.KERNELS`.
VARIANTS = RegistryNames("hmmnlab.model.reads", "KERNELS")

#: ReadConfig fields with an option of their own: field -> option (they must agree with --read).
READ_OPTIONS = {
    "variant": "--variant",
    "mem_every": "--mem-every",
    "max_memory_frames": "--max-memory-frames",
}

WEIGHTS_HELP = (
    "bundled weights by name (demo, demo-stm) or a checkpoint: the authors' HMMN file or hmmnlab's"
)


def add_weights_option(
    parser: argparse.ArgumentParser, *, required: bool = True, help: str = WEIGHTS_HELP
) -> None:
    """``--weights``: a registered name or a checkpoint path."""
    parser.add_argument("--weights", required=required, default=None, help=help)


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """``--variant``, ``--read KEY=VALUE`` (repeatable), ``--mem-every``, ``--max-memory-frames``;
    all default to None (ReadConfig's defaults), see :func:`read_config`."""
    defaults = field_defaults(ReadConfig)
    group = parser.add_argument_group("memory read (hmmnlab.config.ReadConfig)")
    group.add_argument(
        "--variant",
        default=None,
        choices=VARIANTS,
        metavar="NAME",
        help=f"memory read variant: %(choices)s (default {defaults['variant']})",
    )
    group.add_argument(
        "--read",
        action="append",
        metavar="KEY=VALUE",
        help="read parameter, repeatable (e.g. sigma=7, fine=dense, topk_r3=16, guidance=all, "
        f"topk_r2=none); keys: {', '.join(defaults)}",
    )
    group.add_argument(
        "--mem-every",
        type=int,
        default=None,
        metavar="N",
        help=f"keep every N-th frame in memory (default {defaults['mem_every']})",
    )
    group.add_argument(
        "--max-memory-frames",
        type=int,
        default=None,
        metavar="N",
        help="cap on r4 memory frames for long videos (default: no cap)",
    )


def add_device_options(parser: argparse.ArgumentParser, *, amp: bool = True) -> None:
    """``--device`` (default cpu) and, unless ``amp=False``, ``--amp`` and ``--dtype``."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    if amp:
        parser.add_argument("--amp", action="store_true", help="autocast to float16 on CUDA")
        add_dtype_option(parser)


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    """``--dtype``; its default, None, is resolved where the model runs: ``$HMMNLAB_DTYPE`` if
    set, else float32 (:mod:`hmmnlab.precision`, not imported here: no torch at parse time)."""
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default=None,
        help="bfloat16: convolutions in bfloat16 under autocast, the memory read in float32 "
        "(fast on CPUs with AVX-512 BF16 or AMX); default $HMMNLAB_DTYPE if set, else float32",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that runs a model with one read: ``--weights``, the read
    options and the device options."""
    add_weights_option(parser)
    add_read_options(parser)
    add_device_options(parser)


def comma_separated(text: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]`` (an argparse ``type``)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated sequence names, found {text!r}")
    return names


def add_root_option(parser: argparse.ArgumentParser) -> None:
    """``--root ROOT``, also spelled ``--davis ROOT`` (its older name): a dataset folder."""
    parser.add_argument(
        "--root",
        "--davis",
        dest="root",
        required=True,
        type=Path,
        metavar="ROOT",
        help="dataset root folder (--davis ROOT: the same)",
    )


def add_davis_options(parser: argparse.ArgumentParser) -> None:
    """``--root`` (or ``--davis``), ``--year``, ``--split``, ``--resolution`` and ``--sequences``: a
    DAVIS split."""
    add_root_option(parser)
    parser.add_argument("--year", required=True, type=int, choices=(2016, 2017))
    parser.add_argument("--split", default="val", help="split name (default: val)")
    parser.add_argument("--resolution", default="480p", help="annotation folder (default: 480p)")
    parser.add_argument(
        "--sequences", type=comma_separated, default=None, help="comma-separated subset, e.g. a,b"
    )


#: ``--dataset`` choices, and each one's default ``--split``.
DATASETS = {"davis": "val", "youtube-vos": "valid"}


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """A split of DAVIS or YouTube-VOS: ``--dataset``, ``--root`` (or ``--davis``), ``--split``,
    ``--sequences``; ``--year`` and ``--resolution`` (DAVIS); ``--all-frames`` and
    ``--unseen-categories`` (YouTube-VOS). :func:`check_dataset_options` checks that they agree."""
    parser.add_argument(
        "--dataset",
        default="davis",
        choices=tuple(DATASETS),
        help="dataset layout (default davis)",
    )
    add_root_option(parser)
    parser.add_argument(
        "--split",
        default=None,
        help="split name (default: val for DAVIS, valid for YouTube-VOS; train, valid or test)",
    )
    parser.add_argument(
        "--sequences",
        type=comma_separated,
        default=None,
        help="comma-separated subset of sequences (videos), e.g. a,b",
    )
    davis = parser.add_argument_group("DAVIS")
    davis.add_argument(
        "--year", type=int, choices=(2016, 2017), default=None, help="required for DAVIS"
    )
    davis.add_argument(
        "--resolution", default=None, help="frame and annotation folder (default: 480p)"
    )
    youtube = parser.add_argument_group("YouTube-VOS")
    youtube.add_argument(
        "--all-frames",
        action="store_true",
        help="read every frame from <split>_all_frames/JPEGImages (the masks written are still "
        "the meta's frames)",
    )
    youtube.add_argument(
        "--unseen-categories",
        type=comma_separated,
        default=None,
        metavar="CAT,CAT",
        help="score the objects of these categories as unseen (J/F seen and unseen; train split)",
    )


def check_dataset_options(args: argparse.Namespace) -> None:
    """Refuse options of the other dataset, require ``--year`` for DAVIS, fill in the default
    ``--split`` and ``--resolution``."""
    if args.dataset == "davis":
        if args.year is None:
            raise ValueError("--dataset davis needs --year 2016 or 2017")
        given = [o for o, v in (("--all-frames", args.all_frames),
                                ("--unseen-categories", args.unseen_categories)) if v]  # fmt: skip
        if given:
            raise ValueError(
                f"{', '.join(given)}: YouTube-VOS option(s); add --dataset youtube-vos"
            )
        args.resolution = args.resolution or "480p"
    else:
        given = [o for o, v in (("--year", args.year), ("--resolution", args.resolution),
                                ("--overlays", getattr(args, "overlays", False))) if v]  # fmt: skip
        if given:
            raise ValueError(f"{', '.join(given)}: not an option of --dataset {args.dataset}")
    args.split = args.split or DATASETS[args.dataset]


# ----------------------------------------------------------------------------------------------------
# Parsed options -> configs


def read_config(args: argparse.Namespace, *, announce: bool = True) -> ReadConfig:
    """The ReadConfig of a command's read options (:func:`add_read_options`) on top of the read
    its ``--weights`` carry (:func:`hmmnlab.weights.trained_read`; the authors' read
    without weights). A field given both by its own option and by ``--read`` with different values
    is an error naming both; a ``--variant`` other than the weights' starts from that variant's
    registered defaults. ``announce``: print which read runs and why (to stderr)."""
    params = parse_fields(args.read, ReadConfig, option="--read", what="read parameter")
    for field, option in READ_OPTIONS.items():
        given = getattr(args, field, None)
        if given is None:
            continue
        if field in params and params[field] != given:
            raise ValueError(
                f"{option} {given} and --read {field}={params[field]} disagree; give only one"
            )
        params[field] = given
    from hmmnlab.model.reads import read_variant  # the registry (imports torch)
    from hmmnlab.weights import trained_read

    weights = getattr(args, "weights", None)
    base, why = trained_read(weights) if weights else (ReadConfig(), "the authors' read")
    variant = params.pop("variant", base.variant)
    try:
        if variant != base.variant:
            read, why = read_variant(variant, **params), f"--variant {variant}"
        else:
            read = dataclasses.replace(base, **params)
    except ValueError as err:
        raise ValueError(f"read options: {err}") from err
    if params:
        why += "; changed by the read options: " + ", ".join(f"{k}={v}" for k, v in params.items())
    if announce:
        print(f"read: {describe_read(read)} ({why})", file=sys.stderr)
    return read


def describe_read(read: ReadConfig) -> str:
    """``"hmmn (sigma=1.5, temperature=10.0)"``: the variant and the fields that differ from
    ReadConfig's defaults."""
    defaults = field_defaults(ReadConfig)
    changed = [f"{k}={v}" for k, v in read.to_dict().items() if k != "variant" and v != defaults[k]]
    return read.variant + (f" ({', '.join(changed)})" if changed else "")
