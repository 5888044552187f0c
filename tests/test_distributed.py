"""Training on 2 processes (torch.distributed, gloo on the CPU) follows the same loss curve as one
process with the same global batch."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from test_train import SMALL_MODEL, make_video, tiny_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config():
    """Clips one at a time in both runs (micro_batch 1), so that they compute the same per-clip
    arithmetic and differ only in how the gradients are summed."""
    return tiny_config(micro_batch=1, steps=4, batch_size=2, lr=1e-3, max_objects=2, jitter=0.1, seed=5,
                       imagenet_init=False, tie_keys=False)  # fmt: skip


def _run(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    from hmmnlab.train.loop import train

    videos = [make_video(2, 64, num_frames=4), make_video(1, 64, num_frames=4)]
    result = train(_config(), videos, out, model_overrides=SMALL_MODEL, progress=False)
    with open(os.path.join(out, f"losses-{rank}.json"), "w") as fh:
        json.dump(result.losses, fh)
    torch.distributed.destroy_process_group()


def test_two_processes_follow_one_process(tmp_path):
    from hmmnlab.train.loop import STATE_FILE, train

    torch.set_num_threads(1)
    videos = [make_video(2, 64, num_frames=4), make_video(1, 64, num_frames=4)]
    single = train(_config(), videos, tmp_path / "one", model_overrides=SMALL_MODEL,
                   progress=False)  # fmt: skip
    out = tmp_path / "two"
    out.mkdir()
    mp.spawn(_run, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    losses = [json.loads((out / f"losses-{r}.json").read_text()) for r in (0, 1)]
    assert losses[0] == losses[1]  # every rank logs the global loss
    assert len(losses[0]) == 4
    for a, b in zip(single.losses, losses[0], strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    one = torch.load(tmp_path / "one" / STATE_FILE, weights_only=False)["model"]
    two = torch.load(out / STATE_FILE, weights_only=False)["model"]  # written by rank 0
    for key in ("decoder.pred2.weight", "kv_m_r4.key.weight"):
        torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-6)
