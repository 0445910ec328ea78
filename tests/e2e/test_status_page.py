#!/usr/bin/python3
"""The status page ("/") as a person sees it: the real exporter against
libvirt's test driver (test:///default: one running domain "test" whose
clock is frozen in 1989) rendered by headless Chromium. The DOM Chromium
builds must hold the fleet table with the VM "test", its uuid and the same
score /api/v1/targets reports; the screenshot (1200x800, saved in the test's
temp dir and its path printed) must be a real, non-blank image.

Chromium runs as root with --no-sandbox, and with background networking,
component updates and sync disabled, so it talks to 127.0.0.1 only."""
import html.parser
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exporter_proc import EXPORTER, Exporter  # noqa: E402

CONFIG = """collectors:
  libvirt: {interval: 1s}
"""
WIDTH, HEIGHT = 1200, 800


def optional_collector_flags():
    """--no-collector.chrony/--no-collector.ntp when this build knows them."""
    r = subprocess.run([EXPORTER, "--help"], capture_output=True, text=True, timeout=30)
    return [f for f in ("--no-collector.chrony", "--no-collector.ntp")
            if f in r.stdout + r.stderr]


def chromium(tmp_path, url, *mode):
    exe = shutil.which("chromium")
    assert exe, "chromium (Debian package chromium, see scripts/setup) is required"
    profile = tmp_path / "chromium-profile"
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}",
            *mode, url]
    env = dict(os.environ, HOME=str(tmp_path))
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, f"chromium exited {r.returncode}:\n{r.stderr[-3000:]}"
    return r.stdout


class Tables(html.parser.HTMLParser):
    """Collects every <table> as a list of rows; a cell is (text, attributes)."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
            self.tables[-1].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ["", dict(attrs), tag]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append((self._cell[0].strip(), self._cell[1], self._cell[2]))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def png_pixels(path):
    """(width, height, decompressed scanlines) of a PNG file."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert size is not None, f"{path} has no IHDR chunk"
    return size[0], size[1], zlib.decompress(idat)


@pytest.fixture(scope="module")
def exporter():
    with Exporter("--libvirt.uri", "test:///default", *optional_collector_flags(),
                  config_text=CONFIG) as e:
        # Wait (bounded) until the VM has a clock sample, so the page shows data.
        deadline = time.monotonic() + 60
        vm = None
        while time.monotonic() < deadline:
            status, body, _ = e.get("/api/v1/targets")
            vms = json.loads(body)["vms"] if status == 200 else []
            vm = next((v for v in vms if v["domain"] == "test"), None)
            if vm and vm["offset_seconds"] is not None:
                break
            time.sleep(0.2)
        assert vm and vm["offset_seconds"] is not None, \
            f"VM 'test' has no clock sample after 60 s: {vm}\nlog:\n{e.log()[-3000:]}"
        yield e


def vm_test_view(exporter):
    doc = json.loads(exporter.get("/api/v1/targets")[1])
    return next(v for v in doc["vms"] if v["domain"] == "test")


def fleet_row(dom):
    """The fleet table's row of VM "test" as {column header: cell}."""
    parser = Tables()
    parser.feed(dom)
    fleet = [t for t in parser.tables if t and [c[0] for c in t[0]][:3] == ["VM", "State", "Score"]]
    assert len(fleet) == 1, f"no fleet table (VM, State, Score, ...) in the DOM:\n{dom[-3000:]}"
    header = [c[0] for c in fleet[0][0]]
    rows = [r for r in fleet[0][1:] if r and r[0][0] == "test"]
    assert len(rows) == 1, f"VM 'test' is not one row of the fleet table: {fleet[0]}"
    return {header[i]: cell for i, cell in enumerate(rows[0])}


def test_fleet_table_shows_the_vm_and_its_score(exporter, tmp_path):
    # The page and the JSON API render the same snapshot, which changes after
    # each poll: compare against a JSON view that did not change around the
    # page load (the frozen clock settles within two polls).
    for _ in range(5):
        before = vm_test_view(exporter)
        dom = chromium(tmp_path, exporter.base + "/", "--dump-dom")
        after = vm_test_view(exporter)
        if (before["health_score"], before["reasons"]) == (after["health_score"], after["reasons"]):
            break
    (tmp_path / "dom.html").write_text(dom)
    vm = after
    row = fleet_row(dom)
    assert row["VM"][1].get("title") == vm["uuid"]
    assert row["State"][0] == "running"
    assert row["Score"][0] == f"{vm['health_score']:.0f}", (row["Score"], vm["health_score"])
    assert "bad" in row["Score"][1].get("class", ""), "a score this low must be marked bad"
    assert row["Band"][0] == vm["band"] == "bad", (row["Band"], vm["band"])
    assert row["Agent"][0] == ("up" if vm["agent_up"] else "down"), (row["Agent"], vm["agent_up"])
    assert row["Offset vs host"][0] not in ("", "\u2013"), "the VM has a sample: offset shown"
    for reason in vm["reasons"]:
        assert reason in row["Reasons"][0]


def test_screenshot_is_a_real_page(exporter, tmp_path):
    shot = tmp_path / "status_page.png"
    chromium(tmp_path, exporter.base + "/", f"--screenshot={shot}")
    assert shot.exists(), "chromium wrote no screenshot"
    print(f"status page screenshot: {shot}")
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    # Not blank: a rendered page has many distinct byte values (text, colours).
    assert len(set(pixels)) > 16, "the screenshot looks blank"
