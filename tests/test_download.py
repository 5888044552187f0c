"""``hmmnlab download davis`` against a local HTTP server (127.0.0.1 only): download, resume, a
server that ignores Range, truncated and missing files, an unreachable address, zip-slip, sha256."""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmmnlab.commands import download as download_command
from hmmnlab.commands.cli import COMMANDS, build_parser, command_parser, main
from hmmnlab.data import download
from hmmnlab.data.davis import DavisDataset

ARCHIVE = "/DAVIS-test-480p.zip"


def davis_zip(extra: dict[str, bytes] | None = None, *, top: str = "DAVIS/") -> bytes:
    """A small zip in the DAVIS archives' layout: a top folder ``DAVIS/`` holding one sequence
    (``top=""``: the DAVIS folders at the top)."""
    frame, mask = io.BytesIO(), io.BytesIO()
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(frame, format="JPEG")
    labels = Image.fromarray(np.pad(np.ones((8, 8), np.uint8), ((8, 8), (12, 12))), mode="P")
    labels.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    labels.save(mask, format="PNG")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        if top:
            zf.writestr(top, b"")
        zf.writestr(f"{top}JPEGImages/480p/seq/00000.jpg", frame.getvalue())
        zf.writestr(f"{top}Annotations/480p/seq/00000.png", mask.getvalue())
        zf.writestr(f"{top}ImageSets/2017/val.txt", b"seq\n")
        for name, data in (extra or {}).items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


class ArchiveHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` with Range support (206, or 416 past the end). ``server.mode``:
    ``"range"``; ``"ignore-range"`` (always 200 and the whole file); ``"truncate"`` (announces
    the full Content-Length, sends half the body and closes)."""

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start, asked = 0, self.headers.get("Range")
        if asked and server.mode != "ignore-range":
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.mode == "truncate":
            body = body[: len(body) // 2]
        self.wfile.write(body)
        server.sent += len(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    for name in (
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ArchiveHandler)
    httpd.files = {ARCHIVE: davis_zip()}
    httpd.mode = "range"
    httpd.requests = []
    httpd.sent = 0
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}{ARCHIVE}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def cli(root: Path, *extra: str) -> list[str]:
    return ["download", "davis", "--year", "2017", "--root", str(root), "--no-progress", *extra]


def run(argv: list[str]) -> int:
    """The command's run function, so its errors come as exceptions (main prints them)."""
    return download_command.run(build_parser().parse_args(argv))


def test_download_unpacks_the_davis_layout(server, tmp_path, capsys):
    root = tmp_path / "DAVIS"
    assert run(cli(root, "--url", server.url)) == 0
    assert (root / "JPEGImages/480p/seq/00000.jpg").is_file()
    assert (root / "Annotations/480p/seq/00000.png").is_file()
    assert (root / "ImageSets/2017/val.txt").read_text() == "seq\n"
    assert not (root / "DAVIS").exists()  # the top folder is stripped
    archive = root / ".downloads" / ARCHIVE.lstrip("/")
    assert archive.read_bytes() == server.files[ARCHIVE]
    assert not archive.with_name(archive.name + ".part").exists()
    dataset = DavisDataset(root, year=2017, split="val")
    assert dataset.sequences == ["seq"]
    assert dataset["seq"].frame(0).shape == (24, 32, 3)
    assert set(np.unique(dataset["seq"].mask(0))) == {0, 1}

    # again: the unpacked folder is left alone, nothing fetched
    assert run(cli(root, "--url", server.url)) == 0
    assert "left alone" in capsys.readouterr().out
    assert len(server.requests) == 1
    # --overwrite unpacks again from the kept archive, still without fetching it
    (root / "ImageSets/2017/val.txt").write_text("changed\n")
    assert run(cli(root, "--url", server.url, "--overwrite")) == 0
    assert (root / "ImageSets/2017/val.txt").read_text() == "seq\n"
    assert len(server.requests) == 1


def test_a_partial_download_resumes_with_a_range_request(server, tmp_path):
    root = tmp_path / "DAVIS"
    data = server.files[ARCHIVE]
    half = len(data) // 2
    part = root / ".downloads" / (ARCHIVE.lstrip("/") + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:half])
    assert run(cli(root, "--url", server.url)) == 0
    assert server.requests == [(ARCHIVE, f"bytes={half}-")]
    assert server.sent == len(data) - half
    assert (root / ".downloads" / ARCHIVE.lstrip("/")).read_bytes() == data
    assert (root / "ImageSets/2017/val.txt").is_file()


def test_a_server_that_ignores_range_gives_the_whole_file(server, tmp_path):
    server.mode = "ignore-range"
    root = tmp_path / "DAVIS"
    data = server.files[ARCHIVE]
    part = root / ".downloads" / (ARCHIVE.lstrip("/") + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * (len(data) // 2))  # not the file's first half: appending would show
    assert run(cli(root, "--url", server.url)) == 0
    assert server.requests[0][1] is not None  # it was asked for a range, and answered 200
    assert (root / ".downloads" / ARCHIVE.lstrip("/")).read_bytes() == data


def test_a_complete_part_is_not_fetched_again(server, tmp_path):
    root = tmp_path / "DAVIS"
    data = server.files[ARCHIVE]
    part = root / ".downloads" / (ARCHIVE.lstrip("/") + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data)  # stopped after the last byte, before the rename
    assert run(cli(root, "--url", server.url)) == 0
    assert server.sent == 0
    assert (root / ".downloads" / ARCHIVE.lstrip("/")).read_bytes() == data


def test_a_truncated_response_is_a_size_error_and_the_next_run_resumes(server, tmp_path):
    server.mode = "truncate"
    root = tmp_path / "DAVIS"
    with pytest.raises(ValueError, match="partly downloaded or changed"):
        run(cli(root, "--url", server.url))
    archive = root / ".downloads" / ARCHIVE.lstrip("/")
    part = archive.with_name(archive.name + ".part")
    assert not archive.exists() and not (root / "JPEGImages").exists()
    kept = part.stat().st_size
    assert 0 < kept < len(server.files[ARCHIVE])
    server.mode = "range"
    assert run(cli(root, "--url", server.url)) == 0
    assert server.requests[-1][1] == f"bytes={kept}-"
    assert archive.read_bytes() == server.files[ARCHIVE]


def test_a_size_other_than_the_tables_is_refused(server, tmp_path, monkeypatch):
    """The official address with a documented size: a server sending another size is refused."""
    size = len(server.files[ARCHIVE]) + 1
    official = download.Archive(server.url, ("480p",), size=size, source="test")
    monkeypatch.setitem(download.ARCHIVES, (2017, "480p"), official)
    root = tmp_path / "DAVIS"
    with pytest.raises(ValueError, match=f"says {size}: partly downloaded or changed"):
        run(cli(root))
    assert not (root / "JPEGImages").exists()


def test_a_missing_file_is_a_clear_404(server, tmp_path):
    with pytest.raises(ValueError, match="HTTP 404 Not Found .*not at this address"):
        run(cli(tmp_path / "DAVIS", "--url", server.url.replace(ARCHIVE, "/missing.zip")))


def test_an_unreachable_server_says_so_on_the_command_line(tmp_path, capsys):
    url = "http://127.0.0.1:1/DAVIS-2017-trainval-480p.zip"
    assert main(cli(tmp_path / "DAVIS", "--url", url)) == 2
    err = capsys.readouterr().err
    assert "hmmnlab download: error: cannot reach 127.0.0.1:" in err
    assert f"(no network? download the archive by hand from {url} and give --archive FILE)" in err
    assert "Traceback" not in err


def test_a_zip_slip_member_is_refused_before_anything_is_written(tmp_path):
    for name in ("DAVIS/../../evil.txt", f"{tmp_path}/evil.txt", "DAVIS/.downloads/bad.zip"):
        archive = tmp_path / "bad.zip"
        archive.write_bytes(davis_zip({name: b"evil"}))
        root = tmp_path / "DAVIS"
        with pytest.raises(ValueError, match="refusing member .*nothing unpacked"):
            run(cli(root, "--archive", str(archive)))
        assert not (root / "JPEGImages").exists() and not (tmp_path / "evil.txt").exists()


def test_a_sha256_mismatch_is_refused(server, tmp_path):
    root = tmp_path / "DAVIS"
    with pytest.raises(ValueError, match="sha256 .*expected 0{64}"):
        run(cli(root, "--url", server.url, "--sha256", "0" * 64))
    downloads = root / ".downloads"
    assert not (downloads / ARCHIVE.lstrip("/")).exists()
    assert not (downloads / (ARCHIVE.lstrip("/") + ".part")).exists()
    assert not (root / "JPEGImages").exists()
    right = hashlib.sha256(server.files[ARCHIVE]).hexdigest()
    assert run(cli(root, "--url", server.url, "--sha256", right)) == 0


@pytest.mark.parametrize("top", ["DAVIS/", ""])
def test_an_archive_given_by_hand_is_unpacked(tmp_path, top):
    archive = tmp_path / "DAVIS-2017-trainval-480p-copy.zip"
    archive.write_bytes(davis_zip(top=top))
    root = tmp_path / "DAVIS"
    assert run(cli(root, "--archive", str(archive))) == 0
    assert DavisDataset(root, year=2017, split="val").sequences == ["seq"]


def test_a_bad_zip_is_a_clear_error(tmp_path):
    archive = tmp_path / "DAVIS.zip"
    archive.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(ValueError, match="not a zip archive"):
        run(cli(tmp_path / "DAVIS", "--archive", str(archive)))


def test_files_that_differ_are_not_replaced_without_overwrite(tmp_path):
    archive = tmp_path / "DAVIS.zip"
    archive.write_bytes(davis_zip())
    root = tmp_path / "DAVIS"
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("mine\n")
    with pytest.raises(
        ValueError, match="already holds files that differ .*ImageSets/2017/val.txt"
    ):
        run(cli(root, "--archive", str(archive)))
    assert (root / "ImageSets/2017/val.txt").read_text() == "mine\n"
    assert not (root / "JPEGImages").exists()


def test_the_official_table():
    for (_year, resolution), archive in download.ARCHIVES.items():
        assert archive.url.startswith("https://") and archive.name.endswith(".zip")
        assert resolution in archive.resolutions
        assert archive.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", archive.sha256)
    assert download.ARCHIVES[2016, "480p"].url.endswith("/DAVIS-data.zip")
    with pytest.raises(ValueError, match="DAVIS 2016 comes as one archive"):
        download.archive_for(2016, "Full-Resolution")


def test_the_reproduce_page_uses_options_the_parsers_have():
    """Every ``--option`` of an ``hmmnlab COMMAND ...`` line in docs/reproduce.md exists."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "reproduce.md").read_text()
    checked = set()
    for block in re.findall(r"```bash\n(.*?)```", page, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = line.split()
            if len(words) < 2 or words[0] != "hmmnlab" or words[1] not in COMMANDS:
                continue
            known = {o for a in command_parser(words[1])._actions for o in a.option_strings}
            for word in words[2:]:
                if word.startswith("--"):
                    assert word.split("=")[0] in known, f"hmmnlab {words[1]} has no {word}"
            checked.add(words[1])
    assert {"download", "eval"} <= checked


def test_the_davis_2016_layout_is_unpacked(tmp_path):
    """The 2016 archive's split files list image and mask paths (ImageSets/480p/val.txt)."""
    line = b"/JPEGImages/480p/seq/00000.jpg /Annotations/480p/seq/00000.png\n"
    archive = tmp_path / "DAVIS-data.zip"
    with zipfile.ZipFile(io.BytesIO(davis_zip())) as source, zipfile.ZipFile(archive, "w") as zf:
        for info in source.infolist():
            if "ImageSets" not in info.filename:
                zf.writestr(info, source.read(info))
        zf.writestr("DAVIS/ImageSets/480p/val.txt", line)
    root = tmp_path / "DAVIS2016"
    argv = ["download", "davis", "--year", "2016", "--root", str(root), "--archive", str(archive)]
    assert run([*argv, "--no-progress"]) == 0
    assert DavisDataset(root, year=2016, split="val").sequences == ["seq"]
