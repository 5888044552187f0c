"""One ``key=value`` parser for ``--read`` and ``--set``."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from hmmnlab import options

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
    from hmmnlab.train import loop

    assert loop.parse_fields is options.parse_fields
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
