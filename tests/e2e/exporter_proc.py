"""Start and stop a private vmtime_exporter for end-to-end tests.

The exporter listens on 127.0.0.1 with port 0 (the kernel picks a free
port); the chosen port is read from its "listening on ... port=N" log line.
Every wait is bounded, and the process is killed on exit even when a test
fails.
"""
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

EXPORTER = os.environ.get("VMTIME_EXPORTER", "build/exporter/vmtime_exporter")


class Exporter:
    def __init__(self, *args, config_text=None, start_timeout=30):
        self.tmp = tempfile.TemporaryDirectory(prefix="vmtime-e2e-")
        self.args = list(args)
        self.config_path = None
        if config_text is not None:
            self.config_path = os.path.join(self.tmp.name, "config.yml")
            with open(self.config_path, "w") as f:
                f.write(config_text)
            self.args = ["--config.file", self.config_path] + self.args
        if not any(a.startswith("--web.listen-address") for a in self.args):
            self.args += ["--web.listen-address", "127.0.0.1:0"]
        self.log_lines = []
        self._log_lock = threading.Lock()
        self.proc = subprocess.Popen(
            [EXPORTER] + self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = None
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            m = self.find_log(r"listening on .* port=(\d+)")
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.port is None:
            out = self.log()
            self.stop()
            raise RuntimeError("exporter did not start; log:\n" + out)
        self.base = f"http://127.0.0.1:{self.port}"

    def _read(self):
        for line in self.proc.stdout:
            with self._log_lock:
                self.log_lines.append(line.rstrip("\n"))

    def log(self):
        with self._log_lock:
            return "\n".join(self.log_lines)

    def find_log(self, pattern):
        with self._log_lock:
            for line in self.log_lines:
                m = re.search(pattern, line)
                if m:
                    return m
        return None

    def wait_log(self, pattern, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.find_log(pattern)
            if m:
                return m
            time.sleep(0.05)
        raise TimeoutError(f"log line /{pattern}/ not seen in {timeout}s; log:\n{self.log()}")

    def request(self, path, method="GET", data=None, headers=None, timeout=10):
        req = urllib.request.Request(self.base + path, method=method, data=data,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def get(self, path, **kw):
        return self.request(path, **kw)

    def metrics(self):
        status, body, _ = self.get("/metrics")
        assert status == 200, body
        return body

    def wait_metric(self, pattern, timeout=30):
        """Polls /metrics until `pattern` (a regex) matches; returns the match."""
        deadline = time.monotonic() + timeout
        body = ""
        while time.monotonic() < deadline:
            body = self.metrics()
            m = re.search(pattern, body, re.M)
            if m:
                return m
            time.sleep(0.2)
        raise TimeoutError(f"/{pattern}/ not in /metrics after {timeout}s; last:\n{body[-3000:]}\n"
                           f"log:\n{self.log()[-3000:]}")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=5):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=2)
        self.tmp.cleanup()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def metric_value(text, name, labels=None):
    """The value of one series in exposition text, or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if labels and any(got.get(k) != v for k, v in labels.items()):
            continue
        return float(m.group(3))
    return None
