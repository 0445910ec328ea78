#!/usr/bin/python3
"""What the /metrics gzip body keeps live in a whole exporter, by heaptrack.

Generates a libvirt test-driver node document of N running domains (the
form scripts/measure writes) in a temporary directory, starts the exporter
under `heaptrack` on a free 127.0.0.1 port, sends gzip scrapes (as
Prometheus does) until every domain is exported, then `--scrapes` more 2 s
apart, and SIGKILLs the exporter (its own process id, found by its unique
listen address), so heaptrack's "leaked" bytes are what was live at that
moment. Prints those bytes summed by the innermost GzipBody / MetricsCache
frame of each allocation. About 2.5 minutes at 10,000 domains on two cores.
docs/performance.md ("What the gzip body keeps at 10,000 VMs") has figures.

Usage: bench/heaptrack_gzip_body.py --exporter build/exporter/vmtime_exporter
           [--domains 10000] [--scrapes 10] [--out DIR]
"""
import argparse
import collections
import gzip
import importlib.machinery
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def write_node_xml(path, n):
    """The node document scripts/measure generates (one definition of it)."""
    loader = importlib.machinery.SourceFileLoader(
        "vmtime_measure", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "measure"))
    spec = importlib.util.spec_from_loader("vmtime_measure", loader)
    measure = importlib.util.module_from_spec(spec)
    loader.exec_module(measure)
    measure.write_node_xml(path, n)


def scrape(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                 headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=120) as r:
        body = r.read()
        return gzip.decompress(body) if r.headers.get("Content-Encoding") == "gzip" else body


def exporter_pid(exe, address):
    """The exporter heaptrack started (not heaptrack's own processes)."""
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == os.path.basename(exe).encode() \
                and address.encode() in argv:
            return int(p)
    return None


def live_by_frame(data):
    """Leaked bytes of `data` by innermost GzipBody/MetricsCache frame."""
    stacks = data + ".leaked.txt"
    subprocess.run(["heaptrack_print", "-f", data, "-p", "0", "-a", "0", "-T", "0",
                    "-F", stacks, "--flamegraph-cost-type", "leaked"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    by_frame = collections.Counter()
    with open(stacks) as f:
        for line in f:
            stack, _, value = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            ours = [i for i, fr in enumerate(frames) if "GzipBody" in fr or "MetricsCache" in fr]
            if not ours:
                continue
            inner = frames[ours[-1]]
            callee = frames[ours[-1] + 1] if ours[-1] + 1 < len(frames) else ""
            name = re.sub(r"\(.*", "", inner)
            if "deflateInit" in callee:
                name += " (zlib deflateInit2)"
            by_frame[name] += int(value)
    return by_frame


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exporter", default="build/exporter/vmtime_exporter")
    ap.add_argument("--domains", type=int, default=10000)
    ap.add_argument("--scrapes", type=int, default=10)
    ap.add_argument("--out", help="keep heaptrack's data here (default: a temporary directory)")
    args = ap.parse_args()
    exe = os.path.abspath(args.exporter)
    with tempfile.TemporaryDirectory(prefix="vmtime-heaptrack-") as tmp:
        out = args.out or tmp
        node = os.path.join(tmp, "node.xml")
        write_node_xml(node, args.domains)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        address = f"127.0.0.1:{port}"
        data = os.path.join(out, "heaptrack")
        with open(os.path.join(out, "exporter.log"), "w") as log:
            ht = subprocess.Popen(["heaptrack", "-o", data, exe, "--web.listen-address", address,
                                   "--libvirt.uri", "test://" + node],
                                  stdout=log, stderr=subprocess.STDOUT)
        pid = None
        try:
            t0 = time.monotonic()
            while True:
                if time.monotonic() - t0 > 900 or ht.poll() is not None:
                    sys.exit("the exporter did not export every domain within 900 s")
                try:
                    if scrape(port).count(b"\nvmtime_vm_clock_offset_seconds{") >= args.domains:
                        break
                except OSError:
                    pass
                time.sleep(1)
            print(f"every domain exported after {time.monotonic() - t0:.1f} s")
            for _ in range(args.scrapes):
                scrape(port)
                time.sleep(2)
            pid = exporter_pid(exe, address)
            if pid is None:
                sys.exit("exporter process not found")
            os.kill(pid, signal.SIGKILL)
            ht.wait(timeout=300)
        finally:
            if ht.poll() is None:
                if pid is None:
                    pid = exporter_pid(exe, address)
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
                ht.wait(timeout=300)
        data = next(os.path.join(out, f) for f in os.listdir(out) if f.startswith("heaptrack."))
        by_frame = live_by_frame(data)
        for name, live in by_frame.most_common():
            print(f"{live / 1e6:9.3f} MB  {name}")
        print(f"{sum(by_frame.values()) / 1e6:9.3f} MB  in all")


if __name__ == "__main__":
    main()
