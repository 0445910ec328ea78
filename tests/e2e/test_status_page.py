#!/usr/bin/python3
"""The status page ("/") as a person sees it, rendered by headless Chromium
at a desktop width (1280 px) and a phone width (390 px), against the real
exporter and libvirt's test driver at two sizes:

- a small fleet (10 domains from a generated node document: one paused, one
  with a hostile name `<img src=x onerror=alert(1)>&"x`), with the chrony
  collector pointed at a socket that does not exist, so the page must show
  chronyd's error text;
- 10,000 domains (the README's design size).

Chromium is driven over the DevTools protocol on a pipe
(--remote-debugging-pipe: JSON messages separated by NUL on fds 3 and 4), so
the test reads what the browser laid out (rows, visible text, whether the
page scrolls sideways, computed styles) and saves full-page screenshots (in
the test's temp dir; paths printed; VMTIME_SCREENSHOT_DIR keeps copies). One
check serves the page under a strict Content-Security-Policy (injected
through the protocol's Fetch domain): a hash of its one <style> block and
nothing else must be enough. About 40-60 s on 2 busy cores, most of it the
exporter sampling 10,000 domains.
Chromium runs with --no-sandbox and with background networking, component
updates and sync disabled: it talks to 127.0.0.1 only. No timing is
asserted; waits are bounded."""
import fcntl
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
import base64
import hashlib
from base64 import b64decode

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from exporter_proc import EXPORTER, Exporter  # noqa: E402

SMALL, LARGE = 10, 10_000
HOSTILE = '<img src=x onerror=alert(1)>&"x'
PAUSED = "vm-00005"
DESKTOP, NARROW = (1280, 900), (390, 844)
CONFIG = """collectors:
  libvirt: {interval: 2s}
"""


def domain_name(i):
    return HOSTILE if i == 3 else f"vm-{i:05d}"


def xml_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def write_node_xml(path, n, special=True):
    """A libvirt test-driver node document with `n` domains; with `special`,
    domain 3 has the hostile name and domain 5 is paused (test:runstate 3)."""
    with open(path, "w") as f:
        f.write("<node>\n")
        for i in range(n):
            name = domain_name(i) if special else f"vm-{i:05d}"
            state = "<test:runstate>3</test:runstate>" if special and i == 5 else ""
            f.write("  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
                    f"<name>{xml_text(name)}</name><uuid>{i:08x}-5ca1-4e00-8000-{i:012x}</uuid>"
                    f"<memory>65536</memory><os><type>hvm</type></os>{state}</domain>\n")
        f.write("</node>\n")


def collector_flag(name):
    r = subprocess.run([EXPORTER, "--help"], capture_output=True, text=True, timeout=30)
    flag = f"--no-collector.{name}"
    return [flag] if flag in r.stdout + r.stderr else []


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe."""

    def __init__(self, tmp):
        exe = shutil.which("chromium")
        assert exe, "chromium (Debian package chromium, see scripts/setup --test) is required"
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser's ends move above fd 10 first, so the shell's moves to
        # 3 and 4 never clobber one another.
        to_browser_r, from_browser_w = (self._above_ten(fd) for fd in (to_browser_r, from_browser_w))
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                "--remote-debugging-pipe", f"--user-data-dir={tmp}/chromium-profile"]
        # The protocol pipe must be the browser's fds 3 (commands in) and 4
        # (replies out): bash moves the inherited ends there, then execs.
        redirect = (f'exec "$0" "$@" 3<&{to_browser_r} {to_browser_r}<&- '
                    f'4>&{from_browser_w} {from_browser_w}>&-')
        self.log = open(f"{tmp}/chromium.log", "w")
        self.proc = subprocess.Popen(["bash", "-c", redirect] + args, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     pass_fds=(to_browser_r, from_browser_w),
                                     env=dict(os.environ, HOME=str(tmp)))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf, self._next_id, self._events = b"", 0, []

    @staticmethod
    def _above_ten(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high

    def close(self):
        try:
            self._send("Browser.close", {}, None)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.log.close()

    def _send(self, method, params, session):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def _read(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            assert left > 0, "chromium did not answer within the deadline"
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                assert chunk, f"chromium closed the pipe (exit {self.proc.poll()})"
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=None, timeout=90):
        return self.reply(self._send(method, params or {}, session), method, timeout)

    def reply(self, mid, method, timeout=90):
        """The result of command `mid` (it may have arrived while waiting for another)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = next((m for m in self._events if m.get("id") == mid), None)
            if msg is None:
                msg = self._read(deadline)
            else:
                self._events.remove(msg)
            if msg.get("id") == mid:
                assert "error" not in msg, f"{method}: {msg['error']}"
                return msg.get("result", {})
            self._events.append(msg)

    def wait_event(self, method, session, timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self._events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return self._events.pop(i)
            self._events.append(self._read(deadline))

    def open(self, url, size, csp=None):
        """A new tab of `size` (width, height) showing `url`; returns its
        session. With `csp`, the page's response gets that
        Content-Security-Policy header (through the Fetch domain)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=session)
        self.call("Log.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": size[0], "height": size[1], "deviceScaleFactor": 1,
                   "mobile": size[0] < 600}, session=session)
        if csp:
            self.call("Fetch.enable", {"patterns": [{"urlPattern": "*",
                                                     "requestStage": "Response"}]},
                      session=session)
        self._events.clear()
        # The navigation answers only once the response is in: with `csp`,
        # after the paused response below has been fulfilled.
        navigate = self._send("Page.navigate", {"url": url}, session)
        if csp:
            paused = self.wait_event("Fetch.requestPaused", session)["params"]
            body = self.call("Fetch.getResponseBody", {"requestId": paused["requestId"]},
                             session=session)
            data = body["body"] if body["base64Encoded"] else \
                base64.b64encode(body["body"].encode()).decode()
            headers = [h for h in paused["responseHeaders"]
                       if h["name"].lower() != "content-security-policy"]
            headers.append({"name": "Content-Security-Policy", "value": csp})
            self.call("Fetch.fulfillRequest",
                      {"requestId": paused["requestId"], "responseCode": paused["responseStatusCode"],
                       "responseHeaders": headers, "body": data}, session=session)
        self.reply(navigate, "Page.navigate")
        self.wait_event("Page.loadEventFired", session)
        return session

    def console(self, session):
        """Log entries (CSP violations among them) the tab reported so far."""
        return [ev["params"]["entry"] for ev in self._events
                if ev.get("method") == "Log.entryAdded" and ev.get("sessionId") == session]

    def eval(self, session, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                      session=session)
        assert "exceptionDetails" not in r, r["exceptionDetails"]
        return r["result"].get("value")

    def screenshot(self, session, path, width, max_height=5000):
        height = min(self.eval(session, "document.documentElement.scrollHeight"), max_height)
        shot = self.call("Page.captureScreenshot",
                         {"format": "png", "captureBeyondViewport": True,
                          "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
                         session=session)
        path.write_bytes(b64decode(shot["data"]))
        keep = os.environ.get("VMTIME_SCREENSHOT_DIR")
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(path, keep)
        print(f"screenshot: {path}")
        return path


# What the browser laid out: rows (cell texts), visible text, sideways scroll.
LAYOUT_JS = """JSON.stringify({
  rows: Array.from(document.querySelectorAll('table.vms tbody tr'))
            .map(tr => Array.from(tr.cells).map(td => td.textContent)),
  headers: Array.from(document.querySelectorAll('table.vms thead th')).map(th => th.textContent),
  theadDisplay: document.querySelector('table.vms thead') ?
      getComputedStyle(document.querySelector('table.vms thead')).display : null,
  cellLabel: document.querySelector('table.vms td[data-l=Offset]') ?
      getComputedStyle(document.querySelector('table.vms td[data-l=Offset]'), '::before').content
      : null,
  text: document.body.innerText,
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  scripts: document.scripts.length,
  images: document.images.length,
  iframes: document.querySelectorAll('iframe').length,
  next: (Array.from(document.querySelectorAll('.pager a'))
             .find(a => a.textContent.startsWith('Next')) || {}).href || null,
})"""


def layout(browser, session):
    return json.loads(browser.eval(session, LAYOUT_JS))


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def png_is_not_blank(path):
    """A rendered page has many distinct byte values (text, colours)."""
    data, pos, idat = path.read_bytes(), 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat))) > 16


def assert_worst_first(rows):
    """Scores never decrease down the page; equal scores are ordered by band
    (bad first), then name."""
    band_rank = {"bad": 0, "degraded": 1, "good": 2}
    keys = [(int(r[2]), band_rank[r[3]], r[0]) for r in rows]
    assert keys == sorted(keys), f"not worst first: {keys[:20]}"


def wait_page(e, patterns, timeout):
    """Polls "/" until its HTML matches every pattern; returns the HTML. Bounded."""
    deadline, body = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        status, body, _ = e.get("/")
        if status == 200 and all(re.search(p, body) for p in patterns):
            return body
        time.sleep(0.5)
    raise TimeoutError(f"'/' never matched {patterns!r} in {timeout}s; page:\n{body[-3000:]}\n"
                       f"log:\n{e.log()[-3000:]}")


@pytest.fixture(scope="module")
def tmp():
    d = tempfile.TemporaryDirectory(prefix="vmtime-status-")
    yield d.name
    d.cleanup()


@pytest.fixture(scope="module")
def browser(tmp):
    b = Chromium(tmp)
    yield b
    b.close()


@pytest.fixture(scope="module")
def small(tmp):
    node = os.path.join(tmp, "node-small.xml")
    write_node_xml(node, SMALL)
    missing = os.path.join(tmp, "no-chronyd.sock")
    with Exporter("--libvirt.uri", "test://" + node, "--chrony.address", "unix://" + missing,
                  *collector_flag("ntp"), config_text=CONFIG) as e:
        # Every running domain sampled: only the paused one left without data.
        wait_page(e, [r"connected, 10 domains",
                      r'<option value="no_data">no_data \(1\)</option>'], 60)
        yield e


@pytest.fixture(scope="module")
def large(tmp):
    node = os.path.join(tmp, "node-large.xml")
    write_node_xml(node, LARGE, special=False)
    with Exporter("--libvirt.uri", "test://" + node, *collector_flag("chrony"),
                  *collector_flag("ntp"), config_text=CONFIG, start_timeout=120) as e:
        started = time.monotonic()
        wait_page(e, [r"connected, 10,000 domains",
                      r'<option value="no_data">no_data \(0\)</option>'], 300)
        print(f"every one of {LARGE} domains sampled after {time.monotonic() - started:.1f} s")
        yield e


@pytest.mark.parametrize("size", [DESKTOP, NARROW], ids=["desktop", "narrow"])
def test_small_fleet(small, browser, tmp_path, size):
    session = browser.open(small.base + "/", size)
    page = layout(browser, session)
    shot = browser.screenshot(session, tmp_path / f"small-{size[0]}.png", size[0])
    assert png_size(shot)[0] == size[0] and png_is_not_blank(shot)
    assert page["scrollWidth"] <= page["innerWidth"], \
        f"the page scrolls sideways at {size[0]} px: {page['scrollWidth']}"
    rows = page["rows"]
    assert len(rows) == SMALL
    assert_worst_first(rows)
    names = [r[0] for r in rows]
    # The hostile name is text, never markup: no image, no script in the DOM.
    assert HOSTILE in names, names
    assert (page["scripts"], page["images"], page["iframes"]) == (0, 0, 0)
    paused = next(r for r in rows if r[0] == PAUSED)
    assert paused[1] == "paused" and paused[6] == "none yet", paused
    assert names[0] == PAUSED, "no data scores 0: the paused domain is the worst"
    running = next(r for r in rows if r[0] == "vm-00000")
    # Frozen 1989 guest clock: thousands of days behind, uncertainty unsigned.
    assert re.fullmatch(r"-\d{1,3}(,\d{3})*\.\d d", running[4]), running
    assert re.fullmatch(r"\u00b1[\d.]+ (\u00b5s|ms|s)", running[5]), running
    assert re.fullmatch(r"\d+ s ago", running[6]), running
    text = page["text"]
    assert f"{SMALL} VMs: {SMALL} bad" in text.replace("\n", " ")
    assert "connected, 10 domains" in text
    assert "no-chronyd.sock: No such file or directory" in text, "chronyd's error must be shown"
    assert re.search(r"Page generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    if size == NARROW:
        assert page["theadDisplay"] == "none", "narrow: rows become cards with labels"
        assert "Offset" in page["cellLabel"], page["cellLabel"]
    else:
        assert page["theadDisplay"] != "none"
        assert page["headers"][:4] == ["VM", "State", "Score", "Band"]


def test_small_fleet_score_matches_the_api(small, browser):
    """The page and /api/v1/targets render the same snapshot."""
    for _ in range(5):
        before = json.loads(small.get("/api/v1/targets")[1])
        session = browser.open(small.base + "/?q=vm-00000", DESKTOP)
        rows = layout(browser, session)["rows"]
        after = json.loads(small.get("/api/v1/targets")[1])
        if before["vms"] == after["vms"] or [v["health_score"] for v in before["vms"]] == \
                [v["health_score"] for v in after["vms"]]:
            break
    vm = next(v for v in after["vms"] if v["domain"] == "vm-00000")
    assert len(rows) == 1 and rows[0][0] == "vm-00000"
    assert rows[0][2] == f"{vm['health_score']:.0f}" and rows[0][3] == vm["band"]
    for reason in vm["reasons"]:
        assert reason in rows[0][8]


def test_filters_paging_and_bad_parameters(small, browser, tmp_path):
    session = browser.open(small.base + "/?q=VM-0000&limit=3", DESKTOP)
    first = layout(browser, session)
    assert len(first["rows"]) == 3
    assert "Showing 1\u20133 of 9 matching VMs" in first["text"], first["text"][:2000]
    assert first["next"], "a Next link"
    session = browser.open(first["next"], DESKTOP)
    second = layout(browser, session)
    assert "Showing 4\u20136 of 9 matching VMs" in second["text"]
    assert not {r[0] for r in first["rows"]} & {r[0] for r in second["rows"]}
    assert_worst_first(first["rows"] + second["rows"])

    session = browser.open(small.base + "/?band=%3Cscript%3Ealert(1)%3C/script%3E&limit=abc"
                           "&group=%3Cb%3E", NARROW)
    bad = layout(browser, session)
    browser.screenshot(session, tmp_path / "bad-parameters-390.png", NARROW[0])
    assert 'band "<script>alert(1)</script>" is not a band' in bad["text"]
    assert 'limit "abc" is not a whole number' in bad["text"]
    assert 'group "<b>": group name may hold only letters' in bad["text"]
    assert bad["scripts"] == 0
    assert len(bad["rows"]) == SMALL, "bad parameters fall back to the defaults"


@pytest.mark.parametrize("size", [DESKTOP, NARROW], ids=["desktop", "narrow"])
def test_ten_thousand_vms(large, browser, tmp_path, size):
    session = browser.open(large.base + "/", size)
    page = layout(browser, session)
    browser.screenshot(session, tmp_path / f"large-{size[0]}.png", size[0], max_height=3000)
    assert page["scrollWidth"] <= page["innerWidth"]
    assert len(page["rows"]) == 100
    assert_worst_first(page["rows"])
    text = page["text"].replace("\n", " ")
    assert "10,000 VMs: " in text and "Showing 1\u2013100 of 10,000 VMs" in text
    assert "connected, 10,000 domains" in text


def test_ten_thousand_vms_page_is_bounded(large):
    with urllib.request.urlopen(large.base + "/", timeout=60) as r:
        body = r.read()
    print(f"status page at {LARGE} VMs: {len(body)} bytes")
    assert len(body) < 200_000, len(body)
    status, last, _ = large.get("/?offset=9900")
    assert status == 200 and "Showing 9,901&ndash;10,000 of 10,000 VMs" in last
    assert last.count('<td class="vm"') == 100


def test_page_works_under_a_strict_csp(small, browser, tmp_path):
    """The page needs nothing a strict policy forbids: with
    `default-src 'none'; style-src 'sha256-<its one style block>'` the styles
    apply (narrow cards) and Chromium reports no violation."""
    status, html, _ = small.get("/")
    assert status == 200
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(styles) == 1, "one <style> block"
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'"
    session = browser.open(small.base + "/", NARROW, csp=csp)
    page = layout(browser, session)
    browser.screenshot(session, tmp_path / "strict-csp-390.png", NARROW[0], max_height=1200)
    violations = [e["text"] for e in browser.console(session)
                  if "Content Security Policy" in e.get("text", "")]
    assert not violations, violations
    assert page["theadDisplay"] == "none", "the style block applied under the policy"
    assert len(page["rows"]) == SMALL
