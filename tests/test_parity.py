"""hmmnlab against the authors' inference code: the golden fixtures bundled in tests/data."""

from __future__ import annotations

import numpy as np
import pytest

from hmmnlab.hooks import capture
from hmmnlab.inference import propagate
from hmmnlab.weights import load_model

TOL = 1e-4
FIXTURES = ["hmmn_fixture_public", "hmmn_fixture_public_k1"]


def run_fixture(model, fixture):
    """Propagate the fixture's video; returns (per-frame results, cache of frame cap_t)."""
    cap_t = int(fixture["cap_t"])
    results, cached = [], None
    with capture(model) as cache:
        for r in propagate(
            model,
            fixture["frames"],
            fixture["label0"],
            mem_every=int(fixture["mem_every"]),
            device="cpu",
        ):
            results.append(
                (r.probs.numpy(), r.labels.numpy(), None if r.logits is None else r.logits.numpy())
            )
            if r.index == cap_t:
                cached = {k: v.clone() for k, v in cache.items()}
    return results, cached


@pytest.fixture(scope="module")
def folded_recipe_model(recipe_weights_file):
    """The recipe model as the commands run it: BatchNorms folded into the convolutions."""
    return load_model(recipe_weights_file, fast=True)


@pytest.fixture(
    scope="module",
    params=[(f, fold) for f in FIXTURES for fold in (False, True)],
    ids=[f"{f}-{'folded' if fold else 'readable'}" for f in FIXTURES for fold in (False, True)],
)
def fixture_run(request, reference_dir, recipe_model, folded_recipe_model):
    name, folded = request.param
    fixture = dict(np.load(reference_dir / f"{name}.npz"))
    return fixture, *run_fixture(folded_recipe_model if folded else recipe_model, fixture)


def test_probabilities_and_labels_match(fixture_run):
    fixture, results, _ = fixture_run
    assert len(results) == len(fixture["Es"])
    for t, (probs, labels, _) in enumerate(results):
        assert probs.shape == fixture["Es"][t].shape
        np.testing.assert_allclose(probs, fixture["Es"][t], atol=TOL, rtol=0, err_msg=f"frame {t}")
        np.testing.assert_array_equal(labels, fixture["pred"][t], err_msg=f"frame {t}")


def test_output_logits_match(fixture_run):
    fixture, results, _ = fixture_run
    logits = results[int(fixture["cap_t"])][2]
    np.testing.assert_allclose(logits, fixture["logit_t"][0], atol=TOL, rtol=0)


@pytest.mark.parametrize(
    "hook, key",
    [
        ("r4.affinity_logits", "p4_logits"),
        ("r4.kernel", "gauss4"),
        ("r4.affinity", "p4"),
    ],
)
def test_r4_intermediates_match(fixture_run, hook, key):
    fixture, _, cache = fixture_run
    assert tuple(cache[hook].shape) == fixture[key].shape
    np.testing.assert_allclose(cache[hook].numpy(), fixture[key], atol=TOL, rtol=0)


@pytest.mark.parametrize("scale, key", [("r3", "topk3_indices"), ("r2", "topk2_indices")])
def test_topk_index_sets_match(fixture_run, scale, key):
    fixture, _, cache = fixture_run
    ours = np.sort(cache[f"{scale}.topk_indices"].numpy(), axis=-1)
    np.testing.assert_array_equal(ours, np.sort(fixture[key], axis=-1))


def test_memory_schedule_at_capture(fixture_run):
    fixture, _, cache = fixture_run
    # At frame cap_t the r4 memory held cap_mem_T frames: the kept ones then cap_t - 1.
    assert cache["r4.sigmas"].shape == (int(fixture["cap_mem_T"]),)
