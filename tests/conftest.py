"""Shared test fixtures. The golden data of the parity and metrics tests is bundled in tests/data (see
its README); only the tests that need the real DAVIS training set (../shared/data) skip, with a
reason, when it is absent, as in a user's clone."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = REPO / "tests" / "data"  # the golden fixtures, bundled
DAVIS_240P = SHARED / "data" / "davis2016-train-240p"


def require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent ({what}; only the developers' checkout has ../shared)")
    return path


@pytest.fixture(autouse=True)
def same_threads(request):
    """Every test starts with the process's torch thread count, whatever the one before set, and
    a test that leaves it changed is named in $HMMNLAB_THREAD_LEAKS (a file) when that is set.

    The folded model's parity with the authors' fixture depends on the thread count on some CPUs
    (measured on an Intel Xeon: it passes at 2 threads, fails at 1 after a top-k tie flips at
    frame 7), so a test that forgot to restore it must not decide the next test's result."""
    import os

    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        leaks = os.environ.get("HMMNLAB_THREAD_LEAKS")
        if leaks:
            with open(leaks, "a") as file:
                file.write(f"{request.node.nodeid}: {threads} -> {torch.get_num_threads()}\n")
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_davis() -> Path:
    """Real DAVIS 2016 training data at 240p (../shared/data)."""
    return require(DAVIS_240P, "the real DAVIS files of ../shared/data")


@pytest.fixture(scope="session")
def tiny_config():
    """A small random HMMN (ResNet-18 encoders, few channels) for fast tests that need no weights."""
    from hmmnlab.config import ModelConfig

    return ModelConfig(
        backbone="resnet18",
        key_dim_r4=16,
        value_dim_r4=32,
        key_dim_r3=16,
        value_dim_r3=16,
        key_dim_r2=8,
        value_dim_r2=8,
        decoder_dim=16,
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    import torch

    from hmmnlab.model import HMMN

    torch.manual_seed(0)
    return HMMN(tiny_config).eval()


@pytest.fixture(scope="session")
def tiny_weights(tiny_model, tmp_path_factory) -> Path:
    """``tiny_model`` saved as an hmmnlab checkpoint."""
    from hmmnlab.weights import save_checkpoint

    path = tmp_path_factory.mktemp("tiny") / "tiny.pth"
    save_checkpoint(tiny_model, path)
    return path


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """tests/data: the authors' golden fixtures, the state-dict table and the metrics fixture."""
    return REFERENCE


@pytest.fixture(scope="session")
def recipe_state_dict():
    """The authors'-format state dict (keys with ``module.``) of recipe seed 1."""
    from recipe_weights import recipe_state_dict as build

    return build(1)


@pytest.fixture(scope="session")
def recipe_weights_file(recipe_state_dict, tmp_path_factory) -> Path:
    """Recipe seed 1 saved like the released checkpoint (a plain state dict, keys ``module.*``)."""
    import torch

    path = tmp_path_factory.mktemp("weights") / "hmmn_seed1.pth"
    torch.save(recipe_state_dict, path)
    return path


@pytest.fixture(scope="session")
def recipe_model(recipe_weights_file):
    from hmmnlab.weights import load_model

    return load_model(recipe_weights_file)
