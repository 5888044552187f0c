"""J, F and the DAVIS statistics against the official toolkit's numbers (davis_metrics_fixture)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from hmmnlab.evaluation import metrics
from hmmnlab.evaluation.metrics import (
    boundary_f_measure,
    boundary_tolerance,
    db_statistics,
    decay_bins,
    disk,
    evaluate_semisupervised,
    global_statistics,
    jaccard_index,
    object_scores,
    seg2bmap,
)

REFERENCE = Path(__file__).resolve().parent / "data"  # the bundled golden data
TOL = 1e-6


@pytest.fixture(scope="module")
def davis_fixture():
    """(json dict, npz) of tests/data/davis_metrics_fixture: the official toolkit's numbers."""
    json_path = REFERENCE / "davis_metrics_fixture.json"
    with np.load(REFERENCE / "davis_metrics_fixture.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    return json.loads(json_path.read_text()), arrays


@pytest.fixture(scope="module")
def case_scores(davis_fixture):
    """Per-frame (J, F), K x T, of every fixture case, over all frames."""
    doc, arrays = davis_fixture
    return {
        name: object_scores(arrays[f"gt__{name}"], arrays[f"pred__{name}"], case["num_objects"])
        for name, case in doc["cases"].items()
    }


def _close(found: float, expected: float | None) -> bool:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return math.isnan(found)
    return abs(found - expected) <= TOL


# --- building blocks ---------------------------------------------------------------------------


def test_disk_is_skimage_disk():
    # skimage.morphology.disk(2) and disk(3), written out.
    expected_2 = [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]
    expected_3 = [
        [0, 0, 0, 1, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 1, 0, 0, 0],
    ]
    np.testing.assert_array_equal(disk(2), expected_2)
    np.testing.assert_array_equal(disk(3), expected_3)
    # Radius 8 (480p): the 197 lattice points with dy^2 + dx^2 <= 64 (Gauss circle number N(8)).
    assert disk(8).shape == (17, 17) and disk(8).sum() == 197
    # OpenCV's ellipse is a different set, which is why it is not used.
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))
    assert (ellipse != disk(8)).sum() > 0


def test_boundary_tolerance():
    assert boundary_tolerance(480, 854) == 8
    assert boundary_tolerance(100, 140) == 2
    assert boundary_tolerance(240, 427) == 4  # ceil(3.92)
    assert boundary_tolerance(480, 854, bound_th=3) == 3
    with pytest.raises(ValueError, match="whole"):
        boundary_tolerance(480, 854, bound_th=2.5)


def _official_seg2bmap(seg: np.ndarray) -> np.ndarray:
    """A literal transcription of the official ``_seg2bmap`` (zero-filled shifts + overrides)."""
    seg = seg.astype(bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = seg ^ e | seg ^ s | seg ^ se
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def test_seg2bmap_matches_official_transcription():
    rng = np.random.default_rng(0)
    for _ in range(20):
        seg = rng.random((17, 23)) < rng.uniform(0.1, 0.9)
        np.testing.assert_array_equal(seg2bmap(seg), _official_seg2bmap(seg))
    full = np.ones((5, 6), bool)
    # A full image has a boundary only along its last row and column (not the corner).
    expected = np.zeros((5, 6), bool)
    np.testing.assert_array_equal(seg2bmap(full), expected)


def _random_blobs(rng, shape, count):
    mask = np.zeros(shape, np.uint8)
    for _ in range(count):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask


def test_windowed_f_equals_full_frame_f():
    """The fast path (window around the objects) gives exactly the full-frame counts, including
    objects cut by the image border and tiny images."""
    rng = np.random.default_rng(1)
    for shape in [(480, 854), (100, 140), (12, 9)]:
        for _ in range(15):
            gt = _random_blobs(rng, shape, int(rng.integers(0, 3)))
            pred = _random_blobs(rng, shape, int(rng.integers(0, 3)))
            fast = boundary_f_measure(gt, pred)
            full = boundary_f_measure(gt, pred, fast=False)
            assert fast == full


def test_fast_path_agrees_on_fixture_frames(davis_fixture):
    _, arrays = davis_fixture
    gt, pred = arrays["gt__multi3"], arrays["pred__multi3"]
    for t in range(0, len(gt), 7):
        for k in (1, 2, 3):
            assert boundary_f_measure(gt[t] == k, pred[t] == k) == boundary_f_measure(
                gt[t] == k, pred[t] == k, fast=False
            )


# --- the official numbers --------------------------------------------------------------------


CASES = ["blackswan", "camel", "dog", "multi3", "multi3_missing"]


@pytest.mark.parametrize("name", CASES)
def test_per_frame_j_and_f(davis_fixture, case_scores, name):
    doc, arrays = davis_fixture
    j, f = case_scores[name]
    case = doc["cases"][name]
    assert j.shape == f.shape == (case["num_objects"], case["T"])
    np.testing.assert_allclose(j, arrays[f"J__{name}"], rtol=0, atol=TOL)
    np.testing.assert_allclose(f, arrays[f"F__{name}"], rtol=0, atol=TOL)
    for k, obj in enumerate(case["objects"]):
        np.testing.assert_allclose(j[k], obj["J_per_frame_all"], rtol=0, atol=TOL)
        np.testing.assert_allclose(f[k], obj["F_per_frame_all"], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", CASES)
def test_per_object_statistics(davis_fixture, case_scores, name):
    doc, _ = davis_fixture
    j, f = case_scores[name]
    for k, obj in enumerate(doc["cases"][name]["objects"]):
        for values, official, all_frames in [
            (j[k], obj["J_official(frames 1..T-2)"], obj["J_all_frames_stats"]),
            (f[k], obj["F_official(frames 1..T-2)"], obj["F_all_frames_stats"]),
        ]:
            for stats, expected in [
                (db_statistics(values[1:-1]), official),
                (db_statistics(values), all_frames),
            ]:
                assert _close(stats.mean, expected["M"])
                assert _close(stats.recall, expected["R"])
                assert _close(stats.decay, expected["D"])


def test_official_semisupervised_evaluation(davis_fixture):
    doc, arrays = davis_fixture
    official = doc["official_evaluate_semisupervised"]
    scores = [
        evaluate_semisupervised(arrays[f"gt__{name}"], arrays[f"pred__{name}"], name=name)
        for name in official["sequences"]
    ]
    per_object = [pair for seq in scores for pair in seq.statistics()]
    names = [object_name for seq in scores for object_name in seq.object_names]
    assert names == list(official["J"]["M_per_object"])
    for letter, index in (("J", 0), ("F", 1)):
        stats = [pair[index] for pair in per_object]
        np.testing.assert_allclose([s.mean for s in stats], official[letter]["M"], atol=TOL)
        np.testing.assert_allclose([s.recall for s in stats], official[letter]["R"], atol=TOL)
        np.testing.assert_allclose([s.decay for s in stats], official[letter]["D"], atol=TOL)
        np.testing.assert_allclose(
            [s.mean for s in stats], list(official[letter]["M_per_object"].values()), atol=TOL
        )
    table = global_statistics(scores)
    assert list(table) == list(official["global"])
    for key, expected in official["global"].items():
        assert abs(table[key] - expected) <= TOL, key


@pytest.mark.parametrize(
    "name",
    [
        "empty_gt_empty_pred",
        "empty_gt_nonempty_pred",
        "nonempty_gt_empty_pred",
        "identical",
        "box_shifted_4_3",
        "border_touching_shifted",
        "single_pixel_vs_3px_away",
        "single_pixel_vs_20px_away",
        "thin_line_vs_2px_away",
        "box_shifted_with_void",
        "small_100x140_shifted (bound_pix=2)",
    ],
)
def test_single_frame_edge_cases(davis_fixture, name):
    doc, arrays = davis_fixture
    case = doc["edge_cases_single_frame"][name]
    keys = case["npz_keys"]
    gt, pred = arrays[keys[0]], arrays[keys[1]]
    void = arrays[keys[2]] if len(keys) > 2 else None
    assert boundary_tolerance(*gt.shape) == case["bound_pix"]
    assert abs(jaccard_index(gt, pred, void=void) - case["J"]) <= TOL
    assert abs(boundary_f_measure(gt, pred, void=void) - case["F"]) <= TOL
    assert abs(boundary_f_measure(gt, pred, void=void, fast=False) - case["F"]) <= TOL


# --- statistics --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["recall_threshold_strict", "nan_values_ignored"])
def test_statistics_cases(davis_fixture, name):
    doc, _ = davis_fixture
    case = doc["db_statistics_cases"][name]
    values = [math.nan if v is None else v for v in case["values"]]
    stats = db_statistics(values)
    assert _close(stats.mean, case["M"])
    assert _close(stats.recall, case["R"])
    assert _close(stats.decay, case["D"])


def _ramp_values(case, n):
    return case["values"] if isinstance(case["values"], list) else np.linspace(1, 0, n)


def test_decay_bins_official_cases(davis_fixture):
    """Every N of the fixture: the official uint8 bins and numbers (NaN decay from 256 frames on)
    with ``uint8_bin_indices=True``; the default agrees with them below 256 frames."""
    doc, _ = davis_fixture
    cases = doc["db_statistics_cases"]["decay_bins_ramp_linspace_1_to_0"]
    assert {"255", "256", "257", "300"} <= set(cases)
    for key, case in cases.items():
        n = int(key)
        values = _ramp_values(case, n)
        assert decay_bins(n, uint8_bin_indices=True) == [tuple(s) for s in case["bins_slices"]]
        official = db_statistics(values, uint8_bin_indices=True)
        assert _close(official.mean, case["M"]), key
        assert _close(official.recall, case["R"]), key
        assert _close(official.decay, case["D"]), key
        ours = db_statistics(values)
        assert _close(ours.mean, case["M"]) and _close(ours.recall, case["R"]), key
        if n < 256:
            assert decay_bins(n) == [tuple(s) for s in case["bins_slices"]], key
            assert _close(ours.decay, case["D"]), key
        else:
            # Hand computation on the ramp v[i] = 1 - i / (N - 1): a bin [a, b] has mean
            # 1 - (a + b) / 2 / (N - 1), so D = ((a3 + b3) - (a0 + b0)) / 2 / (N - 1) with the
            # exact (not uint8) indices.
            ids = [int(i) for i in case["ids_float"]]
            expected = ((ids[3] + ids[4]) - (ids[0] + ids[1])) / 2 / (n - 1)
            assert math.isnan(official.decay)
            assert abs(ours.decay - expected) <= 1e-12, key
            assert decay_bins(n)[-1] == (ids[3], n)


def test_decay_of_a_long_sequence_by_hand():
    """1000 frames: J = 1 for the first half, 0 for the second half. By hand: ids = round(
    linspace(1, 1000, 5)) - 1 = [0, 250, 500, 749, 999], so the first bin v[0:251] is all ones and
    the last bin v[749:1000] all zeros: D = 1, M = 0.5, R = 0.5."""
    values = np.r_[np.ones(500), np.zeros(500)]
    assert decay_bins(1000) == [(0, 251), (250, 501), (500, 750), (749, 1000)]
    stats = db_statistics(values)
    assert stats.mean == 0.5 and stats.recall == 0.5 and stats.decay == 1.0
    # The official uint8 indices wrap (999 -> 231): the last bin is empty, the decay NaN.
    assert decay_bins(1000, uint8_bin_indices=True)[-1] == (237, 232)
    assert math.isnan(db_statistics(values, uint8_bin_indices=True).decay)


def test_statistics_of_nothing_are_nan():
    stats = db_statistics([])
    assert math.isnan(stats.mean) and math.isnan(stats.recall) and math.isnan(stats.decay)
    all_nan = db_statistics([math.nan, math.nan, math.nan])
    assert math.isnan(all_nan.mean) and all_nan.recall == 0.0 and math.isnan(all_nan.decay)


# --- inputs and errors ---------------------------------------------------------------------------


def test_j_and_f_by_hand():
    gt = np.zeros((50, 60), np.uint8)
    gt[10:20, 10:20] = 1  # 100 pixels
    pred = np.zeros_like(gt)
    pred[10:20, 15:25] = 1  # 50 shared, union 150
    assert jaccard_index(gt, pred) == pytest.approx(50 / 150)
    void = np.zeros_like(gt)
    void[:, 20:] = 1  # removes the 50 predicted-only pixels
    assert jaccard_index(gt, pred, void=void) == pytest.approx(50 / 100)
    # Shift by 5 > tolerance ceil(0.008 * 78.1) = 1: only the top/bottom edges can match.
    assert 0 < boundary_f_measure(gt, pred) < 1
    assert boundary_f_measure(gt, gt) == 1.0


def test_shape_errors():
    with pytest.raises(ValueError, match=r"expected shape \(4, 4\).*found \(4, 5\)"):
        jaccard_index(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="H x W"):
        boundary_f_measure(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="same shape"):
        evaluate_semisupervised(np.zeros((3, 4, 4)), np.zeros((3, 4, 5)))


def test_prediction_label_above_k_is_an_error():
    gt = np.zeros((4, 8, 8), np.uint8)
    gt[:, 2:4, 2:4] = 1
    gt[0, 0, 0] = metrics.VOID_LABEL  # void does not count as an object
    pred = gt.copy()
    pred[0, 0, 0] = 0
    pred[2, 5, 5] = 2
    with pytest.raises(ValueError, match=r"labels 0\.\.1 .*found label\(s\) \[2\]"):
        evaluate_semisupervised(gt, pred, name="toy")
    pred[2, 5, 5] = 0
    scores = evaluate_semisupervised(gt, pred, name="toy")
    assert scores.object_names == ["toy_1"]
    assert scores.frame_names == ("00001", "00002")
    np.testing.assert_array_equal(scores.j, [[1.0, 1.0]])
