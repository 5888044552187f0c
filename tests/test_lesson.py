"""hmmnlab.inside.lesson: what the notebooks place and measure."""

import dataclasses

import numpy as np
import pytest

from hmmnlab import viz
from hmmnlab.inside import lesson


def test_follow_query_uses_the_true_mask_and_says_so():
    seq = lesson.sample_dataset()["twins"]
    truth = seq.mask(8)
    wrong = np.zeros_like(truth)  # a prediction that lost every object
    cell, source = lesson.follow_query(seq, 8, 1, wrong)
    assert (cell, source) == (viz.query_cell_on_object(truth, 1), "true mask")


def test_follow_query_falls_back_on_the_prediction_and_says_so():
    seq = lesson.sample_dataset()["twins"]
    predicted = seq.mask(8)
    first_only = dataclasses.replace(seq, mask_paths=seq.mask_paths[:1])  # a test split
    cell, source = lesson.follow_query(first_only, 8, 1, predicted)
    assert (cell, source) == (viz.query_cell_on_object(predicted, 1), "predicted mask")
    assert lesson.follow_query(seq, 8, 99, predicted)[1] == "predicted mask"  # not in the truth


def test_overlap_table_shows_a_merge():
    truth = np.zeros((8, 8), np.uint8)
    truth[:, :3], truth[:, 5:] = 1, 2
    merged = np.where(truth > 0, 1, 0)  # both twins under label 1
    table = lesson.overlap_table(truth, merged)
    assert list(table.columns) == ["predicted 0", "predicted 1"]
    assert table.loc["true 1", "predicted 1"] == table.loc["true 2", "predicted 1"] == 1.0
    assert lesson.overlap_table(truth, truth).loc["true 2", "predicted 2"] == 1.0


def test_object_cells_and_key_similarity_of_identical_objects():
    labels = np.zeros((32, 48), np.uint8)
    labels[:16, :16], labels[16:, 32:] = 1, 2
    cells = lesson.object_cells(labels, 1)
    assert cells.tolist() == [[True, False, False], [False, False, False]]
    key = np.zeros((4, 2, 3))  # C x h x w
    key[0] = 1.0  # background
    key[:, 0, 0] = key[:, 1, 2] = [0, 1, 1, 0]  # the two objects: the same key
    similarity = lesson.key_similarity(key[None], labels)
    assert list(similarity.index) == ["background", "object 1", "object 2"]
    assert similarity.loc["object 1", "object 2"] == pytest.approx(1.0)
    assert similarity.loc["background", "object 1"] == pytest.approx(0.0)


def test_border_contrast_finds_a_stripe():
    rng = np.random.default_rng(0)
    feature = rng.normal(size=(1, 8, 6, 10))
    feature[..., 0] += 5.0  # a stripe at the left border
    left, right = lesson.border_contrast(feature)
    assert left > 3 and 0.5 < right < 2
