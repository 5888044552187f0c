"""Read ablations on a cut-down sample sequence with a tiny random model: the table's shape, a
refused dense read kept as a row, resuming, the style and the plot."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from hmmnlab import ablation
from hmmnlab.config import ReadConfig
from hmmnlab.model.reads import read_variant

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def short_root(tmp_path_factory):
    """The first 4 frames of the ``twins`` sample (2 objects)."""
    return ablation.short_davis(
        "data_samples", tmp_path_factory.mktemp("davis"), frames=4, sequences=["twins"]
    )


GRID = [
    ("stm", read_variant("stm")),
    ("hmmn-k8", read_variant("hmmn", topk_r3=8)),
    # one query position of a dense r3 read of 2 objects needs ~0.04 MiB: refused with 0.01 MiB
    ("hmmn-dense", read_variant("hmmn", fine="dense", dense_chunk_mib=0.01)),
]


@pytest.fixture(scope="module")
def table(model, short_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    df = ablation.run(short_root, model, variants=GRID, out=out, progress=False)
    return df, out


def test_short_davis_cuts_every_sequence(short_root):
    from hmmnlab.data.davis import DavisDataset

    dataset = DavisDataset(short_root, year=2017, split="val")
    assert dataset.sequences == ["twins"]
    assert len(dataset["twins"]) == 4 and len(dataset["twins"].mask_paths) == 4
    later = ablation.short_davis("data_samples", short_root.parent / "later", frames=5, start=8,
                                 sequences=["twins"])  # fmt: skip
    sequence = DavisDataset(later, year=2017, split="val")["twins"]
    assert sequence.frame_names == ("00008", "00009", "00010", "00011", "00012")
    assert sequence.mask_names == sequence.frame_names
    with pytest.raises(ValueError, match="too few"):
        ablation.short_davis("data_samples", short_root.parent / "x", frames=5, start=28)
    with pytest.raises(ValueError, match="frames must be >= 3"):
        ablation.short_davis("data_samples", short_root, frames=2)


def test_one_row_per_read_with_parameters_and_scores(table):
    df, out = table
    assert list(df["label"]) == ["stm", "hmmn-k8", "hmmn-dense"]
    assert list(df.columns) == ["label", *ReadConfig().to_dict(), *ablation.RESULT_COLUMNS]
    assert list(df["variant"]) == ["stm", "hmmn", "hmmn"]
    assert list(df["topk_r3"]) == [32, 8, 32]
    done = df.iloc[:2]
    for column in ("J&F", "J", "F"):
        assert done[column].between(0, 1).all()
    assert (done["Seconds/frame"] > 0).all() and (done["Peak memory (MiB)"] > 0).all()
    assert (done["note"] == "").all()
    assert (out / "stm" / "global_results.csv").is_file()
    assert len(list((out / "hmmn-k8" / "twins").glob("*.png"))) == 4


def test_a_dense_read_that_does_not_fit_is_a_refused_row(table):
    df, _ = table
    row = df.iloc[2]
    assert np.isnan(row["J&F"]) and np.isnan(row["Seconds/frame"])
    assert row["note"].startswith("refused:") and "dense_chunk_mib" in row["note"]


def test_resume_skips_finished_reads_and_redoes_changed_ones(model, short_root, table):
    _, out = table
    mask = out / "stm" / "twins" / "00002.png"
    stamp = mask.stat().st_mtime_ns
    again = ablation.run(short_root, model, variants=GRID[:1], out=out, progress=False)
    assert mask.stat().st_mtime_ns == stamp
    assert again["J&F"].iloc[0] == pytest.approx(table[0]["J&F"].iloc[0])
    # the same label with another read is segmented again
    ablation.run(short_root, model, variants=[("stm", read_variant("stm", mem_every=2))],
                 out=out, progress=False)  # fmt: skip
    assert mask.stat().st_mtime_ns != stamp


def test_bad_grids_and_sequences_fail_before_any_work(model, short_root, tmp_path):
    with pytest.raises(ValueError, match="unique"):
        ablation.run(short_root, model, variants=GRID[:1] * 2, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="not in the val split"):
        ablation.run(short_root, model, variants=GRID[:1], sequences=["nope"], out=tmp_path)
    with pytest.raises(FileNotFoundError, match="weights not found"):
        ablation.run(short_root, tmp_path / "missing.pth", variants=GRID[:1], out=tmp_path)


def test_grids_have_unique_labels_and_cover_the_ablations():
    for grid in (ablation.default_grid(), ablation.quick_grid()):
        labels = [label for label, _ in grid]
        assert len(set(labels)) == len(labels)
    reads = [read for _, read in ablation.default_grid()]
    assert {r.variant for r in reads} == {"stm", "kmn", "hmmn", "hmmn-paper"}
    assert {r.fine for r in reads} == {"topk", "dense", "none"}
    assert {r.topk_r3 for r in reads} == {8, 16, 32, 64}
    assert len({r.sigma for r in reads if r.variant == "hmmn"}) >= 3
    assert len({r.mem_every for r in reads}) >= 3


def test_styled_and_plot(table):
    df, _ = table
    html = ablation.styled(df).to_html()
    assert "hmmn-k8" in html and "font-weight: bold" in html
    assert ablation.varying_columns(df) == ["variant", "fine", "topk_r3", "dense_chunk_mib"]
    for kind in ("bar", "scatter"):
        fig = ablation.plot(df, kind=kind)
        assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="kind"):
        ablation.plot(df, kind="pie")
