"""``hmmnlab ablate`` and ``ablation.run(executor=...)``: the grid of (read, sequence) cells,
resumed cell by cell, run in this process or as Ray tasks with the same table. A tiny random model
on two sample sequences cut to 4 frames; the Ray tests start one local Ray with 2 CPUs."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from hmmnlab import ablation
from hmmnlab.commands import cli
from hmmnlab.model.reads import read_variant

GRID = [("stm", read_variant("stm")), ("hmmn-k8", read_variant("hmmn", topk_r3=8))]
SEQUENCES = ["twins", "solo-blob"]
#: Ray runs its workers at nice 15: on a machine busy with other work (a training run here) they wait
#: for it and the tests take minutes; the tests' Ray workers get the priority of the tests.
WORKER_PRIORITY = {"RAY_worker_niceness": "0"}
#: Measured, so they differ between runs: every other column of the two tables must be equal.
COSTS = list(ablation.COST_KEYS)


@pytest.fixture(scope="module")
def short_root(tmp_path_factory):
    """The first 4 frames of two samples (2 objects and 1)."""
    return ablation.short_davis("data_samples", tmp_path_factory.mktemp("davis"), frames=4,
                                sequences=SEQUENCES)  # fmt: skip


@pytest.fixture(scope="module")
def local(tiny_model, short_root, tmp_path_factory):
    """The grid run in this process with one torch thread, as a Ray task runs a cell (with other
    threads, float sums in another order could move a pixel): its table and output folder."""
    out = tmp_path_factory.mktemp("local")
    table = ablation.run(short_root, tiny_model, variants=GRID, out=out, progress=False, threads=1)
    return table, out


def masks(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.glob("*/*/*.png"))}


def stamps(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/*/*.png")}


def assert_same_table(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(found.drop(columns=COSTS), expected.drop(columns=COSTS))
    assert (found[COSTS] > 0).all().all()


def same_csv(path: Path, table: pd.DataFrame) -> None:
    """``path`` holds ``table`` (read back as any CSV of it would be)."""
    import io

    assert_same_table(pd.read_csv(path), pd.read_csv(io.StringIO(table.to_csv(index=False))))


def ablate_args(root, weights, out, *extra) -> list[str]:
    return ["ablate", "--davis", str(root), "--year", "2017", "--weights", str(weights),
            "--variants", "stm,hmmn-k8", "--out", str(out), "--threads", "1", "--no-progress",
            *extra]  # fmt: skip


def test_the_table_is_written_with_one_row_per_read(local):
    table, out = local
    assert list(table["label"]) == ["stm", "hmmn-k8"]
    assert table["J&F"].between(0, 1).all() and (table["note"] == "").all()
    same_csv(out / "ablation.csv", table)
    assert len(masks(out)) == 2 * 2 * 4  # reads x sequences x frames
    assert (out / "hmmn-k8" / "per-sequence_results.csv").is_file()


def test_a_cell_cut_off_is_redone_and_the_others_kept(tiny_model, short_root, local, tmp_path):
    """A worker killed mid-cell leaves some masks and no record: only that cell is redone."""
    import shutil

    table, first = local
    out = tmp_path / "out"
    shutil.copytree(first, out)
    (out / "hmmn-k8" / "timing" / "twins.json").unlink()
    (out / "hmmn-k8" / "twins" / "00003.png").unlink()
    before, threads = stamps(out), torch.get_num_threads()
    again = ablation.run(short_root, tiny_model, variants=GRID, out=out, progress=False, threads=1)
    after = stamps(out)
    assert torch.get_num_threads() == threads  # set for the cells only
    redone = {name for name in after if before.get(name) != after[name]}
    assert redone == {f"hmmn-k8/twins/0000{i}.png" for i in range(4)}
    assert masks(out) == masks(first)
    assert_same_table(again, table)


def test_named_reads_of_the_command_line():
    assert ablation.named_grid(["stm", "hmmn-fine-none"]) == [
        ("stm", read_variant("stm")),
        ("hmmn-fine-none", read_variant("hmmn", fine="none")),
    ]
    assert ablation.named_grid(["all"]) == ablation.default_grid()
    with pytest.raises(ValueError, match="unknown read 'nope'.*hmmn-k8"):
        ablation.named_grid(["nope"])
    with pytest.raises(ValueError, match="threads must be None or an int >= 1, got 0"):
        ablation.run("data_samples", None, variants=GRID, threads=0)


def test_without_ray_the_grid_runs_here_and_ray_says_what_to_install(
    tiny_weights, short_root, local, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were absent
    assert cli.main(ablate_args(short_root, tiny_weights, tmp_path / "here")) == 0
    same_csv(tmp_path / "here" / "ablation.csv", local[0])
    assert "wrote" in capsys.readouterr().out
    for extra in (["--ray"], ["--ray-address", "auto"]):
        assert cli.main(ablate_args(short_root, tiny_weights, tmp_path / "ray", *extra)) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == ['hmmnlab ablate: error: running on Ray needs Ray: pip install '
                         '"hmmnlab[cluster]"']  # fmt: skip
    assert not (tmp_path / "ray").exists()  # refused before any work
    with pytest.raises(RuntimeError, match=r'pip install "hmmnlab\[cluster\]"'):
        ablation.run(short_root, tiny_weights, variants=GRID, out=tmp_path, executor="ray")


def test_the_ray_options():
    parser = cli.command_parser("ablate")
    base = ["--davis", "d", "--year", "2017", "--weights", "w", "--out", "o"]
    assert parser.parse_args(base).ray is None  # the cells run in this process
    assert parser.parse_args([*base, "--ray"]).ray == ""  # a local Ray
    assert parser.parse_args([*base, "--ray", "--num-cpus", "2"]).num_cpus == 2
    assert parser.parse_args([*base, "--ray", "auto"]).ray == "auto"
    assert parser.parse_args([*base, "--ray-address", "ray://head:10001"]).ray == "ray://head:10001"


def test_the_device_of_ray_tasks():
    class FakeRay:
        def __init__(self, gpus):
            self.resources = {"CPU": 4.0, **({"GPU": gpus} if gpus else {})}

        def cluster_resources(self):
            return self.resources

    assert ablation._ray_device(FakeRay(0), None) == "cpu"
    assert ablation._ray_device(FakeRay(2), None) == "cuda"
    assert ablation._ray_device(FakeRay(2), "cuda:1") == "cuda"  # Ray picks each task's GPU
    assert ablation._ray_device(FakeRay(2), "cpu") == "cpu"
    with pytest.raises(ValueError, match="has no GPU"):
        ablation._ray_device(FakeRay(0), "cuda")


# ----------------------------------------------------------------------------------------------------
# On Ray


def test_on_ray_the_table_and_masks_are_those_of_the_local_run(
    tiny_weights, short_root, local, tmp_path
):
    """``hmmnlab ablate --ray --num-cpus 2`` in a fresh process: a local Ray started and stopped."""
    import subprocess

    pytest.importorskip("ray", reason='Ray is not installed (pip install "hmmnlab[cluster]")')
    table, first = local
    out = tmp_path / "ray"
    args = ablate_args(short_root, tiny_weights, out, "--ray", "--num-cpus", "2")
    result = subprocess.run([sys.executable, "-m", "hmmnlab", *args], capture_output=True,
                            text=True, timeout=600, env={**os.environ, **WORKER_PRIORITY})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    same_csv(out / "ablation.csv", table)
    assert masks(out) == masks(first)


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "hmmnlab[cluster]")')
    with pytest.MonkeyPatch.context() as patch:
        for name, value in WORKER_PRIORITY.items():
            patch.setenv(name, value)
        ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def kill_first_worker_running(task: str, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first process titled ``ray::<task>`` (a Ray worker running that task)."""
    while not stop.is_set() and not killed:
        for entry in Path("/proc").iterdir():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if title == f"ray::{task}".encode():
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
                return
        time.sleep(0.01)


def test_a_killed_ray_worker_costs_only_its_cell(
    ray_instance, tiny_model, short_root, local, tmp_path
):
    table, first = local
    out = tmp_path / "ray"
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=kill_first_worker_running, args=("run_cell", killed, stop))
    killer.start()
    try:
        with pytest.raises(RuntimeError, match=r"1 of 4 cells failed .*WorkerCrashedError"):
            ablation.run(short_root, tiny_model, variants=GRID, out=out, progress=False,
                         executor="ray", max_retries=0)  # fmt: skip
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1
    records = sorted(p.relative_to(out).as_posix() for p in out.glob("*/timing/*.json"))
    assert len(records) == 3 and not (out / "ablation.csv").exists()
    before = stamps(out)
    again = ablation.run(short_root, tiny_model, variants=GRID, out=out, progress=False,
                         executor="ray")  # fmt: skip
    assert ray_instance.is_initialized()  # the running instance was used, and left running
    after = stamps(out)
    redone = {name for name in after if before.get(name) != after[name]}
    cells = {name.rsplit("/", 1)[0] for name in redone}
    assert len(cells) == 1 and len(redone) == 4  # one cell's 4 masks, the others kept
    label, sequence = cells.pop().split("/")
    assert f"{label}/timing/{sequence}.json" not in records  # the killed cell
    assert_same_table(again, table)
    assert masks(out) == masks(first)


def test_grids_start_from_the_read_the_weights_carry():
    """The reads of the weights' variant take the weights' read; other variants their defaults."""
    from hmmnlab.weights import trained_read

    carried = trained_read("demo")[0]  # hmmn, sigma 0.5, window 3, temperature 10 (the manifest)
    fields = (carried.variant, carried.sigma, carried.window, carried.temperature)
    assert fields == ("hmmn", 0.5, 3, 10.0)
    assert ablation.carried_read("demo") == carried
    assert ablation.carried_read("demo-stm") == trained_read("demo-stm")[0]
    grid = dict(ablation.named_grid(["hmmn", "hmmn-k8", "hmmn-fine-none", "stm"], carried))
    assert grid["hmmn"] == carried
    assert grid["hmmn-k8"] == dataclasses.replace(carried, topk_r3=8)
    assert grid["hmmn-fine-none"] == dataclasses.replace(carried, fine="none")
    assert grid["stm"] == read_variant("stm")  # another variant: its registered defaults
    assert dict(ablation.quick_grid(carried))["hmmn"] == carried
    assert dict(ablation.quick_grid())["hmmn"] == read_variant("hmmn")  # no base: the authors'
    assert dict(ablation.default_grid(carried))["hmmn-sigma6"].temperature == 10.0
