#!/usr/bin/python3
"""Memory and scrape latency of the HTTP server with many slow connections.

Starts the exporter (timex collector only) on 127.0.0.1, scrapes /metrics
20 times, reads RSS/threads/VSZ from /proc, opens N connections that send
half a request header and stop (each holds a civetweb worker until the 5 s
header deadline), reads the figures again and times one scrape with them
open. Loopback only; about 5 s.

Usage: bench/http_connections.py [--exporter build/exporter/vmtime_exporter] [--connections 300]
"""
import argparse
import re
import socket
import subprocess
import time
import urllib.request


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        s = f.read()
    field = lambda name: int(re.search(name + r":\s+(\d+)", s).group(1))  # noqa: E731
    return field("VmRSS"), field("Threads"), field("VmSize")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exporter", default="build/exporter/vmtime_exporter")
    ap.add_argument("--connections", type=int, default=300)
    args = ap.parse_args()
    p = subprocess.Popen([args.exporter, "--web.listen-address", "127.0.0.1:0",
                          "--no-collector.libvirt", "--no-collector.guest_status",
                          "--no-collector.chrony", "--no-collector.ntp"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    socks = []
    try:
        port = None
        for line in p.stdout:
            m = re.search(r"listening on .*port=(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        url = f"http://127.0.0.1:{port}/metrics"
        for _ in range(20):
            urllib.request.urlopen(url, timeout=10).read()
        rss, threads, vsz = proc_status(p.pid)
        print(f"idle after 20 scrapes: RSS {rss} KiB, {threads} threads, VSZ {vsz} KiB")
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            socks.append(s)
        time.sleep(1)
        rss, threads, vsz = proc_status(p.pid)
        print(f"{args.connections} slow connections open: RSS {rss} KiB, {threads} threads, "
              f"VSZ {vsz} KiB")
        t0 = time.monotonic()
        urllib.request.urlopen(url, timeout=30).read()
        print(f"one scrape with them open: {(time.monotonic() - t0) * 1000:.1f} ms")
    finally:
        for s in socks:
            s.close()
        p.terminate()
        p.wait(timeout=10)


if __name__ == "__main__":
    main()
