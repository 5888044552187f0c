"""bfloat16 on the CPU (``--dtype bfloat16``, :mod:`hmmnlab.precision`): convolutions in bfloat16,
the memory read in float32, float32 untouched."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from hmmnlab import precision
from hmmnlab.inference import propagate
from hmmnlab.lesson import sample_dataset
from hmmnlab.trace import run_with_cache
from hmmnlab.weights import load_model

FLAGS = "processor : 0\nflags : fpu sse2 avx512f {}\n"


def test_dtype_names():
    assert precision.check_dtype(None) == "float32"
    assert precision.check_dtype(torch.bfloat16) == "bfloat16"
    assert precision.check_dtype("float32") == "float32"
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16"):
        precision.check_dtype("float16")


def test_native_bf16_reads_the_cpu_flags():
    assert precision.native_bf16(FLAGS.format("avx512_bf16")) is True
    assert precision.native_bf16(FLAGS.format("amx_bf16 amx_tile")) is True
    assert precision.native_bf16(FLAGS.format("avx2")) is False


def test_no_native_bf16_warns_once(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    monkeypatch.setattr(precision, "_warned_slow", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            precision.autocast(torch.device("cpu"), dtype="bfloat16")
    slow = [w for w in caught if "no native bfloat16" in str(w.message)]
    assert len(slow) == 1


def test_amp_and_bfloat16_exclude_each_other():
    with pytest.raises(ValueError, match="exclude each other"):
        precision.autocast(torch.device("cpu"), amp=True, dtype="bfloat16")


@pytest.fixture(scope="module")
def twins():
    sequence = sample_dataset()["twins"]
    return [sequence.frame(i) for i in range(4)], sequence.first_mask()


@pytest.fixture(scope="module")
def demo():
    return load_model("demo")


def test_bfloat16_convolutions_and_a_float32_read(demo, twins):
    frames, labels = twins
    _, cache = run_with_cache(demo, frames, labels, frame=2, dtype="bfloat16")
    assert cache["query_features.k4"].dtype == torch.bfloat16  # a convolution's output
    for name in ("r4.affinity_logits", "r4.kernel", "r4.affinity", "r3.readout"):
        assert cache[name].dtype == torch.float32, name
    _, cache32 = run_with_cache(demo, frames, labels, frame=2)
    assert all(t.dtype != torch.bfloat16 for t in cache32.values())  # float32 stays float32


def test_bfloat16_labels_agree_with_float32(demo, twins):
    frames, labels = twins
    full = [r.labels.numpy() for r in propagate(demo, frames, labels)]
    half = [r.labels.numpy() for r in propagate(demo, frames, labels, dtype="bfloat16")]
    agreement = np.mean([(a == b).mean() for a, b in zip(full, half, strict=True)])
    assert agreement > 0.99, agreement


def test_the_commands_take_dtype_and_records_hold_it(demo):
    from hmmnlab.cli import command_parser
    from hmmnlab.records import run_settings

    for command in ("segment", "eval", "trace", "ablate"):
        options = {a.dest: a for a in command_parser(command)._actions}
        assert options["dtype"].choices == ("float32", "bfloat16"), command
        assert options["dtype"].default == "float32", command
    settings = run_settings(demo, demo.default_read, resolution="480p", overlays=False)
    assert settings["dtype"] == "float32"
    half = run_settings(
        demo, demo.default_read, resolution="480p", overlays=False, dtype="bfloat16"
    )
    assert half != settings  # a float32 run's masks are not taken as a bfloat16 run's
