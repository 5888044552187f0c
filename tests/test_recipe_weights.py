"""hmmnlab's recipe weights are the ones the golden fixtures were made with (issue 13 item 14)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from recipe_weights import DATA, TSV, checksum, recipe_state_dict

CHECKSUMS = json.loads((DATA / "weights_checksums.json").read_text())


def test_the_tsv_is_the_one_the_checksums_describe():
    assert hashlib.sha256(TSV.read_bytes()).hexdigest() == CHECKSUMS["tsv_sha256"]


@pytest.mark.parametrize("seed", [1, 7])
def test_recipe_weights_match_the_recorded_checksum(seed):
    state = recipe_state_dict(seed)
    expected = CHECKSUMS[f"seed{seed}"]
    assert len(state) == CHECKSUMS["rows"]
    assert sum(v.numel() for v in state.values()) == CHECKSUMS["total_elements"]
    for key, values in expected["samples"].items():
        np.testing.assert_array_equal(state[key].reshape(-1)[: len(values)].numpy(), values, key)
    assert checksum(state) == expected["sha256_all_tensors"]
