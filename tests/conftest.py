"""Shared test fixtures. Tests that need ../shared (the authors' fixtures, real DAVIS data) skip with a
reason when it is absent, as in a user's clone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
DAVIS_240P = SHARED / "data" / "davis2016-train-240p"


def require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent ({what}; only the developers' checkout has ../shared)")
    return path


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
    return require(REFERENCE, "the authors' reference fixtures")


@pytest.fixture(scope="session")
def make_weights(reference_dir):
    """The ``make_weights`` module of ../shared/reference (recipe weights for the fixtures)."""
    spec = importlib.util.spec_from_file_location("make_weights", reference_dir / "make_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def recipe_state_dict(make_weights, reference_dir):
    """The authors'-format state dict (keys with ``module.``) of recipe seed 1."""
    return make_weights.build_state_dict(str(reference_dir / "hmmn_state_dict.tsv"), 1)


@pytest.fixture(scope="session")
def recipe_weights_file(recipe_state_dict, tmp_path_factory) -> Path:
    """Recipe seed 1 saved like the released checkpoint (as ``make_weights.py`` saves it)."""
    import torch

    path = tmp_path_factory.mktemp("weights") / "hmmn_seed1.pth"
    torch.save(recipe_state_dict, path)
    return path


@pytest.fixture(scope="session")
def recipe_model(recipe_weights_file):
    from hmmnlab.weights import load_model

    return load_model(recipe_weights_file)
