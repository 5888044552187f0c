"""One set of model options for every command, the variant list from the registry, and one
``key=value`` parser for ``--read`` and ``--set``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from hmmnlab.commands import options
from hmmnlab.commands.cli import COMMANDS, command_parser
from hmmnlab.config import ReadConfig

#: The commands that run a model with one read.
MODEL_COMMANDS = ("segment", "trace", "eval")
MODEL_OPTIONS = ("--weights", "--variant", "--read", "--mem-every", "--max-memory-frames",
                 "--device", "--amp")  # fmt: skip
READ_ONLY = {"--variant", "--read", "--mem-every", "--max-memory-frames"}


def declared(name: str) -> dict[str, tuple]:
    """option -> what its parser declares for it (dest, default, type, choices, required,
    help...)."""
    found = {}
    for action in command_parser(name)._actions:
        for option in action.option_strings:
            choices = None if action.choices is None else list(action.choices)
            found[option] = (type(action).__name__, action.dest, action.default, action.type,
                             choices, action.required, action.metavar, action.help)  # fmt: skip
    return found


def test_every_model_command_declares_the_same_model_options():
    reference = {o: declared(MODEL_COMMANDS[0])[o] for o in MODEL_OPTIONS}
    for name in MODEL_COMMANDS[1:]:
        found = declared(name)
        missing = [o for o in MODEL_OPTIONS if o not in found]
        assert not missing, f"hmmnlab {name} lacks {missing}"
        for option in MODEL_OPTIONS:
            assert found[option] == reference[option], f"hmmnlab {name} {option}"
    defaults = {option: reference[option][2] for option in MODEL_OPTIONS}
    assert defaults == dict.fromkeys(MODEL_OPTIONS) | {"--device": "cpu", "--amp": False}


def test_read_options_come_all_together_and_only_to_model_commands():
    """demo runs a fixed tour of several reads and takes none; a command with one takes all."""
    with_read = {name for name in COMMANDS if READ_ONLY & set(declared(name))}
    assert with_read == set(MODEL_COMMANDS)
    for name in COMMANDS:  # --device means the same everywhere it is taken
        found = declared(name)
        if "--device" in found:
            assert found["--device"] == declared("segment")["--device"], name


def test_parsed_read_options_give_the_read_config():
    args = command_parser("eval").parse_args(
        ["--davis", "d", "--year", "2017", "--weights", "w", "--out", "o", "--variant", "kmn",
         "--max-memory-frames", "3", "--read", "topk_r2=none", "--read", "fine=dense"]
    )  # fmt: skip
    read = options.read_config(args)
    assert (read.variant, read.max_memory_frames) == ("kmn", 3)
    assert (read.topk_r2, read.fine) == (None, "dense")
    assert read.sigma == 7.0  # kmn's own default
    plain = options.read_config(command_parser("eval").parse_args(args_of_eval()))
    assert plain == ReadConfig()


def args_of_eval() -> list[str]:
    return ["--davis", "d", "--year", "2017", "--weights", "w", "--out", "o"]


# --- the variant list is the registry's ------------------------------------------------------------


def test_variant_choices_are_the_registry_names():
    from hmmnlab.model.reads import KERNELS

    for name in MODEL_COMMANDS:
        assert declared(name)["--variant"][4] == list(KERNELS)


def test_a_variant_registered_at_run_time_is_accepted(capsys):
    from hmmnlab.model.reads import KERNELS, register_kernel

    parser = command_parser("eval")  # built before the variant exists
    with pytest.raises(SystemExit):
        parser.parse_args([*args_of_eval(), "--variant", "test-cli-late"])
    assert "invalid choice: 'test-cli-late'" in capsys.readouterr().err

    @register_kernel("test-cli-late")
    def late_kernel(logits, track, h, w, config, module):
        """No kernel, under another name."""
        return None

    try:
        args = parser.parse_args([*args_of_eval(), "--variant", "test-cli-late"])
        assert options.read_config(args).variant == "test-cli-late"
        assert "test-cli-late" in declared("segment")["--variant"][4]
    finally:
        del KERNELS["test-cli-late"]


# --- one key=value parser ------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    count: int = 1
    rate: float = 0.5
    name: str = "a"
    flag: bool = True
    limit: int | None = None


def test_values_are_parsed_by_their_field_type():
    items = ["count=3", "rate=1e-3", "name=none-of-these", "flag=no", "limit=none"]
    assert options.parse_fields(items, Example, option="--x") == {
        "count": 3, "rate": 1e-3, "name": "none-of-these", "flag": False, "limit": None,
    }  # fmt: skip
    assert options.parse_fields(["limit=4", "flag=TRUE"], Example, option="--x") == {
        "limit": 4, "flag": True,
    }  # fmt: skip
    assert options.parse_fields(None, Example, option="--x") == {}
    assert options.parse_fields([" rate = 2 "], Example, option="--x") == {"rate": 2.0}


@pytest.mark.parametrize(
    "item, message",
    [
        ("count", "--x expects key=value, got 'count'"),
        ("count=2.5", "--x count=2.5: expected an integer for count, found '2.5'"),
        ("rate=fast", "--x rate=fast: expected a number for rate, found 'fast'"),
        ("flag=maybe", "--x flag=maybe: expected true or false for flag, found 'maybe'"),
        ("count=none", "--x count=none: count cannot be none (expected int)"),
        ("colour=red", "--x colour=red: unknown setting 'colour'; known: count, flag, limit, name, rate"),
    ],
)  # fmt: skip
def test_bad_items_are_errors_naming_the_option(item, message):
    with pytest.raises(ValueError) as err:
        options.parse_fields([item], Example, option="--x", what="setting")
    assert str(err.value) == message


def test_a_key_given_twice_is_an_error():
    with pytest.raises(ValueError, match="--x count is given twice"):
        options.parse_fields(["count=1", "count=1"], Example, option="--x")


def test_the_same_parser_serves_read_and_set():
    from hmmnlab.train import config as train_config
    from hmmnlab.train import loop

    assert train_config.parse_fields is options.parse_fields
    args = argparse.Namespace(read=["sigma=2", "sigma=3"], variant=None, mem_every=None,
                              max_memory_frames=None)  # fmt: skip
    with pytest.raises(ValueError, match="--read sigma is given twice"):
        options.read_config(args)
    with pytest.raises(ValueError, match="--set steps is given twice"):
        loop.parse_overrides(["steps=1", "steps=2"])
    with pytest.raises(ValueError, match="--set model.width=2: unknown model field 'width'"):
        loop.parse_overrides(["model.width=2"])
    config, model = loop.parse_overrides(
        ["imagenet_init=none", "flip=off", "micro_batch=2", "model.decoder-dim=32"]
    )
    assert (config.imagenet_init, config.flip, config.micro_batch) == (None, False, 2)
    assert model == {"decoder_dim": 32}
