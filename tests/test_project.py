"""The project's own files agree with each other: dependencies, quick start, CI, lint, notebooks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pip name -> conda name where they differ
CONDA_NAMES = {"torch": "pytorch", "opencv-python-headless": "py-opencv"}


def split_requirement(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", text.strip())
    return match.group(1).lower(), match.group(2).replace(" ", "")


def test_environment_yml_lists_the_pyproject_dependencies():
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip = dict(split_requirement(r) for r in project["dependencies"])
    for extra in ("train", "cluster", "dev"):
        pip.update(split_requirement(r) for r in project["optional-dependencies"][extra])
    pip = {name: v for name, v in pip.items() if not name.startswith("hmmnlab")}  # dev -> extras
    conda = {}
    text = (REPO / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        item = re.match(r"\s+-\s+([^#\s].*?)\s*$", line)
        if item and not item.group(1).startswith(("python", "pip")):
            name, version = split_requirement(item.group(1))
            conda[name] = version
    expected = {CONDA_NAMES.get(name, name): version for name, version in pip.items()}
    assert conda == expected


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_two_quick_start_commands_and_ci_runs_the_test_one():
    demo, tests = readme_commands()
    assert "hmmnlab" in demo and "pytest" in tests
    ci = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert tests in ci
    makefile = (REPO / "Makefile").read_text()
    assert f"\t{demo}\n" in makefile and f"\t{tests}\n" in makefile


def test_demo_command_uses_bundled_files():
    demo, _ = readme_commands()
    assert demo.endswith("hmmnlab demo")
    assert (REPO / "data_samples" / "ImageSets" / "2017" / "val.txt").is_file()
    weights = REPO / "data_samples" / "weights" / "demo.pth"
    assert weights.is_file() and weights.stat().st_size <= 15 * 2**20


@pytest.mark.skipif(
    shutil.which("ruff") is None and not Path(sys.executable).with_name("ruff").exists(),
    reason="ruff is not installed (pip install -e '.[dev]')",
)
def test_ruff_is_clean():
    """Lint everything, notebooks included; format the package, tests and benchmarks (notebook cells
    keep their one-line calls)."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    code = ["hmmnlab", "tests", "benchmarks"]
    for command in (["check", *code, "notebooks"], ["format", "--check", *code]):
        result = subprocess.run(
            [ruff, *command],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_notebooks_are_committed_without_outputs():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, path.name
