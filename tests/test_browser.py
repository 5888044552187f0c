"""The top-k inspector in a real browser: Voila serves a notebook with the inspector on localhost,
headless Chromium (Debian's ``chromium`` and ``chromium-driver``) clicks a query position on the query
frame, and the affinity figure on screen changes.

Skips with a reason when Chromium, its driver, Selenium or Voila is absent (``apt-get install chromium
chromium-driver``, ``pip install selenium voila``): they are not dependencies of hmmnlab.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hmmnlab.config import ModelConfig
from hmmnlab.data.palette import write_label_png
from hmmnlab.model import HMMN
from hmmnlab.weights import save_checkpoint

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SIZE = (60, 75)  # padded 64 x 80: r4 grid 4 x 5 (padding top 2, left 2)
WAIT_S = 180

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
    ),
    pytest.mark.skipif(
        not Path(CHROMEDRIVER).exists(),
        reason="chromedriver is not installed (apt-get install chromium-driver)",
    ),
]


def write_davis(root: Path, num_frames: int = 4, size: tuple[int, int] = SIZE) -> None:
    """A 2-object video "pair" of ``size`` (H, W): object 1 a textured square moving right."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    patch = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    for t in range(num_frames):
        frame = background.copy()
        frame[18:34, 6 + 4 * t : 22 + 4 * t] = patch
        path = root / "JPEGImages" / "480p" / "pair" / f"{t:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frame).save(path, quality=95)
        labels = np.zeros(size, np.uint8)
        labels[18:34, 6 + 4 * t : 22 + 4 * t] = 1
        labels[40:56, 48:68] = 2
        write_label_png(root / "Annotations" / "480p" / "pair" / f"{t:05d}.png", labels)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("pair\n")


def write_notebook(path: Path, root: Path, weights: Path) -> None:
    source = (
        "from hmmnlab.widgets import topk_inspector\n"
        f"inspector = topk_inspector({str(root)!r}, weights={str(weights)!r}, num_frames=4)\n"
        "inspector"
    )
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": source,
            }  # fmt: skip
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what: str, timeout: float = WAIT_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = condition()
        except Exception:  # the page is still loading
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(params=[SIZE])
def served(tmp_path, request):
    """Voila serving a notebook that shows the inspector of a tiny random model on a video of
    size ``request.param`` (H, W)."""
    pytest.importorskip("voila", reason="voila is not installed (pip install voila)")
    root = tmp_path / "davis"
    write_davis(root, size=request.param)
    torch.manual_seed(0)
    model = HMMN(ModelConfig(backbone="resnet18", key_dim_r4=16, value_dim_r4=32, key_dim_r3=16,
                             value_dim_r3=16, key_dim_r2=8, value_dim_r2=8, decoder_dim=16))  # fmt: skip
    save_checkpoint(model, tmp_path / "tiny.pth")
    write_notebook(tmp_path / "app.ipynb", root, tmp_path / "tiny.pth")
    port = free_port()
    log = open(tmp_path / "voila.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voila",
            "app.ipynb",
            "--no-browser",
            f"--port={port}",
            "--Voila.ip=127.0.0.1",
        ],  # fmt: skip
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() or True,
                 "voila to listen", 60)  # fmt: skip
        yield f"http://127.0.0.1:{port}/", tmp_path
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


WINDOW = (1600, 1200)  # the student's screen of issue 13 (width, height)


@pytest.fixture(params=[WINDOW])
def browser(tmp_path, request):
    """Headless Chromium with a window of ``request.param`` = (width, height) pixels."""
    width, height = request.param
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}",
                 f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_click_on_the_query_frame_updates_the_figures(served, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, tmp_path = served
    browser.get(url)

    def images():
        found = browser.find_elements(By.CSS_SELECTOR, "img.widget-image")
        return found if len(found) >= 4 else None

    def status() -> str:
        return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".widget-html"))

    try:
        # in page order: the query frame, the top-k cells next to it, the affinity, the kernel
        query, topk, affinity = wait_for(images, "the inspector's images")[:3]
        # the inspector starts on object 1 (frame 3: rows 18-33, columns 18-33)
        wait_for(lambda: "(y, x) = (1, 1)" in status(), "the initial query cell (1, 1)")
        # issue 13 item 15: the top-k figure keeps its aspect ratio (not stretched to the table)
        natural = browser.execute_script(
            "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", topk
        )
        shown_ratio = topk.size["width"] / topk.size["height"]
        assert shown_ratio == pytest.approx(natural[0] / natural[1], rel=0.05), (natural, topk.size)
        before = np.asarray(Image.open(io.BytesIO(affinity.screenshot_as_png)).convert("RGB"))
        width, height = query.size["width"], query.size["height"]
        # frame pixel (5, 5) -> padded (7, 7) -> r4 cell (0, 0); offsets are from the centre
        x = 5 * width / SIZE[1] - width / 2
        y = 5 * height / SIZE[0] - height / 2
        ActionChains(browser).move_to_element_with_offset(query, int(x), int(y)).click().perform()
        wait_for(lambda: "(y, x) = (0, 0)" in status(), "the clicked query cell (0, 0)", 60)
        affinity = wait_for(images, "the images after the click")[2]
        after = np.asarray(Image.open(io.BytesIO(affinity.screenshot_as_png)).convert("RGB"))
    finally:
        browser.save_screenshot(str(tmp_path / "page.png"))
    assert before.shape == after.shape and before.size > 0
    changed = np.abs(before.astype(int) - after.astype(int)).max(axis=2) > 30
    assert changed.mean() > 0.01, "the affinity figure on screen did not change"


@pytest.mark.parametrize("served", [(240, 427)], indirect=True)  # the samples' size (DAVIS 240p)
def test_query_and_topk_are_side_by_side_and_in_view(served, browser):
    """Issue 13 item 16, measured on screen (1600 x 1200, a 240p video): the top-k figure sits to
    the right of the query frame, top-aligned with it, both wholly inside the first screen, so a
    click and its effect are seen together; the figures are shown at their own size (not shrunk),
    so their 9 pt text stays 12 px or more at the inspector's 100 dpi."""
    from selenium.webdriver.common.by import By

    url, tmp_path = served
    browser.get(url)

    def images():
        found = browser.find_elements(By.CSS_SELECTOR, "img.widget-image")
        return found if len(found) >= 4 and all(i.size["width"] > 0 for i in found[:4]) else None

    try:
        query, topk, affinity = wait_for(images, "the inspector's images")[:3]
        wait_for(lambda: topk.size["height"] > 0, "the top-k figure")
        box = "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]"
        q = browser.execute_script(box, query)
        k = browser.execute_script(box, topk)
        view = browser.execute_script("return [window.innerWidth, window.innerHeight]")
        natural = [
            browser.execute_script("return arguments[0].naturalWidth", image)
            for image in (query, topk, affinity)
        ]
    finally:
        browser.save_screenshot(str(tmp_path / "layout.png"))
    assert k[0] >= q[2] - 1, f"top-k figure {k} is not right of the query frame {q}"
    assert abs(k[1] - q[1]) < 40, f"top-k figure {k} and query frame {q} are not top-aligned"
    for name, rect in (("query frame", q), ("top-k figure", k)):
        assert rect[2] <= view[0] and rect[3] <= view[1], f"{name} {rect} leaves the screen {view}"
    assert query.size["width"] >= 427  # the frame at full size
    for image, width in zip((query, topk, affinity), natural, strict=True):
        assert image.size["width"] >= width - 1, (image.size, width)  # not shrunk


IMAGES = ("query frame", "top-k figure", "affinity figure", "kernel figure")  # in page order


@pytest.mark.parametrize("served", [(240, 427)], indirect=True)
@pytest.mark.parametrize(
    "browser, sidebar",
    [((1280, 720), 0), ((980, 720), 300), ((1600, 1000), 0), ((1300, 1000), 300)],
    indirect=["browser"],
)
def test_figures_fit_the_window_and_a_click_redraws(served, browser, sidebar):
    """Issue 22 items 3 and 6: at 1280 x 720 and 1600 x 1000, with or without a sidebar beside
    the page (JupyterLab's, 300 px: the page is then as wide as a window 300 px narrower, which
    is what the test opens), the query frame, the top-k figure,
    the affinity and the kernel maps are inside the window horizontally, shown (not clipped to
    nothing) and with their own aspect ratio. Prints how long a click takes to reach the
    affinity image on screen (no assertion on it: the time depends on the machine)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    url, tmp_path = served
    browser.get(url)

    def images():
        found = browser.find_elements(By.CSS_SELECTOR, "img.widget-image")
        shown = len(found) >= 4 and all(i.size["width"] > 0 for i in found[:4])
        return found[:4] if shown else None

    def status() -> str:
        return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".widget-html"))

    rect = (
        "const r = arguments[0].getBoundingClientRect();"
        "return [r.left, r.right, r.width, r.height, arguments[0].naturalWidth,"
        " arguments[0].naturalHeight, window.innerWidth]"
    )
    try:
        wait_for(images, "the inspector's images")
        wait_for(lambda: "computing" not in status() and "(y, x) =" in status(), "the first draw")
        placed = {name: browser.execute_script(rect, image)
                  for name, image in zip(IMAGES, images(), strict=True)}  # fmt: skip
        query, _, affinity, _ = images()
        before = affinity.get_attribute("src")
        width, height = query.size["width"], query.size["height"]
        # frame pixel (5, 5): r4 cell (0, 0), away from the starting cell on object 1
        x, y = 5 * width / 427 - width / 2, 5 * height / 240 - height / 2
        start = time.perf_counter()
        ActionChains(browser).move_to_element_with_offset(query, int(x), int(y)).click().perform()
        wait_for(lambda: images()[2].get_attribute("src") != before, "the redrawn affinity", 60)
        took = time.perf_counter() - start
        wait_for(lambda: "(y, x) = (0, 0)" in status(), "the clicked query cell (0, 0)", 60)
    finally:
        browser.save_screenshot(str(tmp_path / "fit.png"))
    print(f"window {browser.get_window_size()} (sidebar {sidebar} px): click -> new affinity image "
          f"on screen in {took:.2f} s")  # fmt: skip
    for name, (left, right, shown_w, shown_h, natural_w, natural_h, inner) in placed.items():
        assert left >= 0 and right <= inner, f"{name} [{left}, {right}] leaves {inner}"
        assert shown_w > 100 and shown_h > 50, f"{name} is clipped: {shown_w} x {shown_h}"
        ratio = (shown_w / shown_h) / (natural_w / natural_h)
        assert ratio == pytest.approx(1, rel=0.05), f"{name} is stretched by {ratio:.2f}"
