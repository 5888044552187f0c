"""Checkpoint loading: the authors' released layout loads strictly; bad files fail clearly."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from hmmnlab.model import HMMN
from hmmnlab.weights import (
    AUTHORS_NAMES,
    from_authors_key,
    load_checkpoint,
    load_model,
    save_checkpoint,
    to_authors_key,
)


@pytest.fixture(scope="module")
def tsv_rows(reference_dir):
    with open(reference_dir / "hmmn_state_dict.tsv") as f:
        return [row for row in csv.DictReader(f, delimiter="\t")]


def test_model_keys_and_shapes_are_the_released_checkpoints(tsv_rows):
    """Every key of the authors' file maps to one of ours with the same shape, and vice versa."""
    ours = HMMN().state_dict()
    mapped = {from_authors_key(r["key"]): r["shape"] for r in tsv_rows}
    assert len(tsv_rows) == 572
    assert set(mapped) == set(ours)
    for key, shape in mapped.items():
        expected = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        assert tuple(ours[key].shape) == expected, key
    assert all(to_authors_key(from_authors_key(r["key"])) == r["key"] for r in tsv_rows)


def test_name_table_is_one_to_one():
    assert len(set(AUTHORS_NAMES.values())) == len(AUTHORS_NAMES)


def test_authors_file_loads_strictly(recipe_weights_file, recipe_state_dict):
    model = load_model(recipe_weights_file)
    key = "module.Encoder_Q.res4.5.bn3.running_mean"
    torch.testing.assert_close(
        model.query_encoder.layer3[5].bn3.running_mean, recipe_state_dict[key], rtol=0, atol=0
    )
    assert not model.training


def save_modified(tmp_path, state_dict, name="bad.pth"):
    path = tmp_path / name
    torch.save(state_dict, path)
    return path


def test_missing_key_is_named(tmp_path, recipe_state_dict):
    sd = dict(recipe_state_dict)
    del sd["module.Decoder.pred2.bias"]
    with pytest.raises(ValueError, match=r"1 missing keys: decoder\.pred2\.bias"):
        load_model(save_modified(tmp_path, sd))


def test_unexpected_key_is_named(tmp_path, recipe_state_dict):
    sd = dict(recipe_state_dict)
    sd["module.Extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"unexpected keys: Extra\.weight"):
        load_model(save_modified(tmp_path, sd))


def test_wrong_shape_is_named(tmp_path, recipe_state_dict):
    sd = dict(recipe_state_dict)
    sd["module.KV_M_r4.Key.bias"] = torch.zeros(64)
    with pytest.raises(
        ValueError, match=r"kv_m_r4\.key\.bias \(.*\): checkpoint \(64,\), model \(128,\)"
    ):
        load_model(save_modified(tmp_path, sd))


def test_truncated_file(tmp_path, recipe_weights_file):
    data = recipe_weights_file.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(text)
    other = save_modified(tmp_path, {"epoch": 3}, "other.pth")
    with pytest.raises(ValueError, match="not an HMMN checkpoint"):
        load_checkpoint(other)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_hmmnlab_checkpoint_round_trip(tmp_path, tiny_config):
    config = tiny_config
    torch.manual_seed(0)
    model = HMMN(config)
    path = tmp_path / "small.pth"
    save_checkpoint(model, path, meta={"note": "test"})
    loaded = load_model(path)
    assert loaded.config == config
    assert loaded.checkpoint_meta == {"note": "test"}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_registered_weights_are_checked_by_sha256(tmp_path, tiny_weights, monkeypatch):
    """Export a model as named weights; load it by name; a changed file is refused."""
    from hmmnlab import weights as weights_module
    from hmmnlab.config import ModelConfig
    from hmmnlab.train.export import export, update_manifest
    from hmmnlab.weights import registered_weights, resolve_weights

    config = ModelConfig(**torch.load(tiny_weights, weights_only=True)["model_config"])
    path = export(tiny_weights, "tiny", trained_read="stm", model_config=config, folder=tmp_path)
    update_manifest(tmp_path, {"name": "tiny", "metrics": {"JF": 0.5}})
    entry = registered_weights(tmp_path)["tiny"]
    assert entry.file == "tiny.pth" and entry.trained_read == "stm" and entry.metrics == {"JF": 0.5}
    monkeypatch.setattr(weights_module, "BUNDLED_WEIGHTS", tmp_path)
    model = load_model("tiny")
    assert model.checkpoint_meta["trained_read"] == "stm"
    assert resolve_weights("tiny") == path
    with pytest.raises(FileNotFoundError, match=r"registered: \['tiny'\]"):
        load_model("tinyy")
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="sha256"):
        load_model("tiny")


def test_bundled_demo_weights_load_by_name():
    """``demo`` and ``demo-stm`` are bundled, load by name, say which read trained them, and
    stay within the 20 MB budget together."""
    from hmmnlab.weights import BUNDLED_WEIGHTS, registered_weights

    registry = registered_weights()
    assert {"demo", "demo-stm"} <= set(registry)
    for name, read in (("demo", "hmmn"), ("demo-stm", "stm")):
        model = load_model(name)
        assert registry[name].trained_read == read == model.checkpoint_meta["trained_read"]
        assert model.config.backbone == "efficientnet_lite0"
    total = sum(p.stat().st_size for p in BUNDLED_WEIGHTS.glob("*.pt*"))
    assert total <= 20 * 2**20, f"bundled weights take {total / 2**20:.1f} MiB"


def test_missing_key_is_also_named_as_in_the_authors_file(tmp_path, recipe_state_dict):
    """Issue 13 item 10: the error names the key as the file does, too."""
    sd = dict(recipe_state_dict)
    del sd["module.Encoder_M.mean"]
    with pytest.raises(ValueError, match=r"memory_encoder\.mean \(module\.Encoder_M\.mean in the"):
        load_model(save_modified(tmp_path, sd))


def test_non_finite_authors_weight_is_refused_at_load(tmp_path, recipe_state_dict):
    sd = dict(recipe_state_dict)
    sd["module.Decoder.pred2.bias"] = torch.tensor([float("nan"), 0.0])
    with pytest.raises(
        ValueError, match=r"NaN or infinite values in 1 entry: decoder\.pred2\.bias"
    ):
        load_model(save_modified(tmp_path, sd))


def test_non_finite_weight_is_refused_at_load(tmp_path, tiny_config):
    """Issue 13 item 4: one NaN or Inf weight would give all-background masks with exit code 0."""
    for bad in (float("nan"), float("inf")):
        model = HMMN(tiny_config)
        with torch.no_grad():
            model.decoder.pred2.weight.view(-1)[3] = bad
        save_checkpoint(model, tmp_path / "bad.pth")
        with pytest.raises(ValueError, match=r"expected finite weights.*decoder\.pred2\.weight"):
            load_model(tmp_path / "bad.pth")


def test_export_carries_the_runs_training_read(tmp_path, tiny_weights, monkeypatch):
    """A run's state.pth records its training read: the exported entry carries the fields that
    shape r4 (not mem_every, a budget), and loading by name runs that read."""
    from hmmnlab import weights as weights_module
    from hmmnlab.config import ModelConfig, ReadConfig
    from hmmnlab.train.export import carried_read, export
    from hmmnlab.weights import registered_weights, trained_read

    payload = torch.load(tiny_weights, weights_only=True)
    training_read = dataclasses.asdict(ReadConfig(sigma=1.5, temperature=10.0, mem_every=1))
    state = {"model_config": payload["model_config"], "model": payload["state_dict"], "step": 9,
             "optimizer": {}, "numpy_rng": {}, "torch_rng": torch.get_rng_state(),
             "train_config": {"read": training_read}}  # a run's state.pth (train.loop.STATE_KEYS)  # fmt: skip
    torch.save(state, tmp_path / "state.pth")
    config = ModelConfig(**payload["model_config"])
    export(tmp_path / "state.pth", "tiny", trained_read="hmmn", model_config=config,
           folder=tmp_path)  # fmt: skip
    assert registered_weights(tmp_path)["tiny"].read == {"sigma": 1.5, "temperature": 10.0}
    monkeypatch.setattr(weights_module, "BUNDLED_WEIGHTS", tmp_path)
    read, why = trained_read("tiny")
    assert (read.variant, read.sigma, read.temperature, read.mem_every) == ("hmmn", 1.5, 10.0, 5)
    assert "manifest" in why
    with pytest.raises(ValueError, match="trained with the 'hmmn' read, not 'stm'"):
        carried_read(training_read, "stm")
    # a bare checkpoint records no training read: the entry carries none
    export(tiny_weights, "bare", trained_read="stm", model_config=config, folder=tmp_path)
    assert registered_weights(tmp_path)["bare"].read == {}
