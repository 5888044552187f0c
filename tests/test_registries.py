"""Read variants are registered functions, and the registries are the only lists of them: a variant
registered here runs through propagate, ablation.run and the demo report with no package change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from hmmnlab import ablation, ops
from hmmnlab.config import ReadConfig
from hmmnlab.inference import propagate
from hmmnlab.model.reads import (
    FINE_READS,
    KERNELS,
    describe,
    read_variant,
    register_fine_read,
    register_kernel,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def box_and_first_frame():
    """A box kernel and a fine read of frame 0 only, registered for one test."""

    @register_kernel("test-box")
    def box_kernel(logits, track, h, w, config, module):
        """1 in a box of side 5 around each memory row's best query position, 0.1 elsewhere."""
        centres = module.centres(logits.argmax(dim=2))  # B x THW
        y, x = ops.grid_coordinates(h, w, device=logits.device)  # HW, HW
        cy, cx = (centres // w).unsqueeze(-1), (centres % w).unsqueeze(-1)  # B x THW x 1
        box = ((y - cy).abs() <= 2) & ((x - cx).abs() <= 2)  # B x THW x HW
        return 0.1 + 0.9 * box.float()  # 1 in the box, 0.1 elsewhere

    @register_fine_read("test-first-frame")
    def first_frame_read(mk, mv, qk, guidance, config, module):
        """A dense read of frame 0 alone."""
        p = module.attention(torch.softmax(ops.affinity(mk[:, :, :1], qk), dim=1))  # B x HW x HW
        return ops.read_out(mv[:, :, :1], p, *qk.shape[-2:])

    yield "test-box", "test-first-frame"
    del KERNELS["test-box"], FINE_READS["test-first-frame"]


def test_registering_twice_or_a_non_function_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_kernel("hmmn")(lambda *a: None)
    with pytest.raises(ValueError, match="already registered"):
        register_fine_read("topk")(lambda *a: None)
    with pytest.raises(TypeError, match="register a function"):
        register_fine_read("text")("attend somewhere")


def test_the_config_validates_against_the_registries(box_and_first_frame):
    kernel, fine = box_and_first_frame
    with pytest.raises(ValueError, match="variant must be one of"):
        ReadConfig(variant="test-other")
    config = read_variant(kernel, fine=fine)
    assert (config.variant, config.fine) == (kernel, fine)
    assert describe(KERNELS)[kernel] == (
        "1 in a box of side 5 around each memory row's best query position, 0.1 elsewhere."
    )


def test_a_registered_variant_runs_everywhere(box_and_first_frame, tiny_model, tmp_path):
    from hmmnlab.data.davis import DavisDataset
    from hmmnlab.inside import report

    kernel, fine = box_and_first_frame
    root = ablation.short_davis("data_samples", tmp_path / "davis", frames=3, sequences=["twins"])

    twins = DavisDataset(root, year=2017, split="val")["twins"]
    frames, labels = list(twins.frames()), twins.first_mask()
    custom = read_variant(kernel, fine=fine)
    results = list(propagate(tiny_model, frames, labels, read=custom, trace=["r4.kernel"]))
    plain = list(propagate(tiny_model, frames, labels))
    assert not torch.equal(results[2].probs, plain[2].probs)
    values = results[2].trace["r4.kernel"].unique()
    torch.testing.assert_close(values, torch.tensor([0.1, 1.0]))

    grid = [("stm", read_variant("stm")), ("hmmn", read_variant("hmmn")), ("custom", custom)]
    table = ablation.run(root, tiny_model, variants=grid, out=tmp_path / "ablation", progress=False)
    row = table.set_index("label").loc["custom"]
    assert (row["variant"], row["fine"]) == (kernel, fine) and 0 <= row["J&F"] <= 1
    # the report segments the samples' trio-crossing and twins (cut to 3 frames)
    page = report.demo(tmp_path / "demo", weights=tiny_model, frames=3, grid=grid, progress=False)
    assert "custom" in page.read_text()


def test_help_and_docs_list_every_registered_variant(box_and_first_frame, capsys):
    from hmmnlab.commands.cli import main

    readme = (REPO / "README.md").read_text()
    for name in set(KERNELS) - set(box_and_first_frame):
        assert f"`{name}`" in readme, f"README: no row for the r4 read {name!r}"
    for name in set(FINE_READS) - set(box_and_first_frame):
        assert f'"{name}"' in readme, f"README: the fine read {name!r} is not named"
    for command in ("segment", "eval"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        # argparse wraps lines after hyphens too ("test-" / "box"): join those back
        help_text = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))
        for name in KERNELS:  # the help is built from the registry: the test variant is there too
            assert name in help_text, f"{command} --help does not name {name!r}"


def test_a_read_registers_its_defaults_and_its_memory_cost():
    """A kernel's defaults go to read_variant; a fine read's memory cost to resources.peak_bytes."""
    from hmmnlab import registry
    from hmmnlab.evaluation.resources import peak_bytes

    @register_kernel("test-wide", defaults={"sigma": 11.0})
    def wide_kernel(logits, track, h, w, config, module):
        """No kernel, registered with a default sigma."""
        return None

    def cost(num_objects, hw, frames, config):
        return 1000 * num_objects * frames

    @register_fine_read("test-costly", memory=cost)
    def costly_read(mk, mv, qk, guidance, config, module):
        """Zeros, with a registered cost."""
        return mv.new_zeros(mv.shape[0], mv.shape[1], *qk.shape[-2:])

    @register_fine_read("test-free")
    def free_read(mk, mv, qk, guidance, config, module):
        """Zeros, registered without a cost (it counts as nothing)."""
        return mv.new_zeros(mv.shape[0], mv.shape[1], *qk.shape[-2:])

    try:
        assert read_variant("test-wide").sigma == 11.0
        assert read_variant("test-wide", sigma=2.0).sigma == 2.0
        # both keep the fine memory banks; only the registered cost differs
        free = peak_bytes(64, 64, 2, 10, ReadConfig(fine="test-free"))
        assert peak_bytes(64, 64, 2, 10, ReadConfig(fine="test-costly")) == free + 1000 * 2 * 3
    finally:
        del KERNELS["test-wide"], registry.KERNEL_DEFAULTS["test-wide"]
        del FINE_READS["test-costly"], registry.FINE_READ_MEMORY["test-costly"]
        del FINE_READS["test-free"]
        registry.FINE_READ_MEMORY.pop("test-free", None)
