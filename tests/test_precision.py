"""bfloat16 on the CPU (``--dtype bfloat16``, :mod:`hmmnlab.precision`): convolutions in bfloat16,
the memory read in float32, float32 untouched."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from hmmnlab import precision
from hmmnlab.inference import propagate
from hmmnlab.inside.lesson import sample_dataset
from hmmnlab.inside.trace import run_with_cache
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
    from hmmnlab.commands.cli import command_parser
    from hmmnlab.evaluation.records import run_settings

    for command in ("segment", "eval", "trace", "ablate", "demo"):
        options = {a.dest: a for a in command_parser(command)._actions}
        assert options["dtype"].choices == ("float32", "bfloat16"), command
        assert options["dtype"].default is None, command  # the process-wide default
    settings = run_settings(demo, demo.default_read, resolution="480p", overlays=False)
    assert settings["dtype"] == "float32"
    half = run_settings(
        demo, demo.default_read, resolution="480p", overlays=False, dtype="bfloat16"
    )
    assert half != settings  # a float32 run's masks are not taken as a bfloat16 run's


def test_the_default_dtype_comes_from_the_environment_once(monkeypatch):
    monkeypatch.setattr(precision, "_default", None)  # not read yet
    monkeypatch.setenv("HMMNLAB_DTYPE", "bfloat16")
    assert precision.get_default_dtype() == "bfloat16"
    monkeypatch.setenv("HMMNLAB_DTYPE", "float32")
    assert precision.get_default_dtype() == "bfloat16"  # read once
    monkeypatch.setattr(precision, "_default", None)
    monkeypatch.delenv("HMMNLAB_DTYPE")
    assert precision.get_default_dtype() == "float32"


def test_a_bad_environment_dtype_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(precision, "_default", None)
    monkeypatch.setenv("HMMNLAB_DTYPE", "float16")
    with pytest.raises(ValueError, match=r"\$HMMNLAB_DTYPE must be one of float32, bfloat16"):
        precision.resolve_dtype(None)
    assert precision.resolve_dtype("float32") == "float32"  # an explicit dtype needs no default


def test_the_setter_and_the_context_restore_the_default(monkeypatch):
    monkeypatch.setattr(precision, "_default", None)
    monkeypatch.delenv("HMMNLAB_DTYPE", raising=False)
    with precision.default_dtype("bfloat16"):
        assert precision.resolve_dtype(None) == "bfloat16"
        assert precision.resolve_dtype("float32") == "float32"  # explicit wins
    assert precision.get_default_dtype() == "float32"
    assert precision.set_default_dtype(torch.bfloat16) == "float32"  # returns the previous one
    assert precision.get_default_dtype() == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be one of"):
        precision.set_default_dtype("float16")


def test_a_run_without_dtype_runs_in_the_default(monkeypatch, demo, twins):
    from hmmnlab.evaluation.records import run_settings

    monkeypatch.setattr(precision, "_default", None)
    monkeypatch.delenv("HMMNLAB_DTYPE", raising=False)
    frames, labels = twins
    frames = frames[:3]

    def probs(**kwargs):
        return [r.probs.numpy() for r in propagate(demo, frames, labels, **kwargs)]

    full, half = probs(), probs(dtype="bfloat16")
    assert any(not np.array_equal(a, b) for a, b in zip(full, half, strict=True))
    with precision.default_dtype("bfloat16"):
        for a, b in zip(probs(), half, strict=True):  # bfloat16, with no dtype given
            np.testing.assert_array_equal(a, b)
        for a, b in zip(probs(dtype="float32"), full, strict=True):  # explicit float32 stays
            np.testing.assert_array_equal(a, b)
        _, cache = run_with_cache(demo, frames, labels, frame=2, names_filter=["query_features.k4"])
        assert cache["query_features.k4"].dtype == torch.bfloat16
        settings = run_settings(demo, demo.default_read, resolution="480p", overlays=False)
        assert settings["dtype"] == "bfloat16"  # the record says what ran


def test_float32_on_cuda_turns_tf32_off_while_it_runs():
    """A float32 run on CUDA runs without TF32 (PyTorch's default TF32 convolutions put the
    probabilities 0.13 from the authors' on an H200), and gives the flags back after each frame;
    the CPU's float32 context changes nothing. (Flags only: no GPU is needed to check them.)"""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        context = precision.autocast(torch.device("cuda"))
        for _ in range(2):  # entered once per frame
            with context:
                assert not torch.backends.cudnn.allow_tf32
                assert not torch.backends.cuda.matmul.allow_tf32
            assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with precision.autocast(torch.device("cpu")):
            assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
