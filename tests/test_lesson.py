"""hmmnlab.lesson: what the notebooks place and measure."""

import dataclasses

import numpy as np

from hmmnlab import lesson, viz


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
