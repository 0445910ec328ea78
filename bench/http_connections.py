#!/usr/bin/python3
"""Memory and scrape latency of the HTTP server, idle and with slow connections.

For each --exporter binary (give two to compare builds in one run), starts
the exporter (timex collector only; with --libvirt URI also the libvirt
collector) on 127.0.0.1 and reports:

- idle after 20 scrapes: RSS, threads, VSZ, and where the RSS is: worker
  thread stacks (touched pages of the civetweb workers' stack mappings),
  libcrypto.so.3 (file-backed and relocated pages), other anonymous memory;
- RSS with N slow connections that send half a header and stop (each holds
  a worker until the 5 s header deadline), and one scrape's time with them;
- RSS with N connections that send a 16,000-byte header without its end:
  every worker's request buffer filled to the limit, the worst case;
- the stack high-water of a worker (deepest touched page below the top of
  its stack mapping, from /proc/PID/pagemap) after serving each endpoint,
  one fresh process per endpoint, and with TLS and basic auth on
  (needs the openssl tool and Python's crypt module).

Loopback only; about 30 s per binary. Reads /proc/PID/task/*/syscall and
pagemap: run as the exporter's user or root.

Usage: bench/http_connections.py [--exporter build/exporter/vmtime_exporter]...
                                 [--connections 300] [--no-stack] [--libvirt URI]
"""
import argparse
import base64
import collections
import os
import re
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import urllib.request
import warnings

PAGE = os.sysconf("SC_PAGE_SIZE")
BASE_ARGS = ["--no-collector.libvirt", "--no-collector.guest_status", "--no-collector.chrony",
             "--no-collector.ntp"]
MIB = 1024 * 1024


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        s = f.read()
    field = lambda name: int(re.search(name + r":\s+(\d+)", s).group(1))  # noqa: E731
    return field("VmRSS") * 1024, field("Threads"), field("VmSize") * 1024


def smaps(pid):
    """[(start, end, name, rss bytes)] of every mapping."""
    out = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
            if m:
                out.append([int(m[1], 16), int(m[2], 16), m[3].strip(), 0])
            elif line.startswith("Rss:"):
                out[-1][3] = int(line.split()[1]) * 1024
    return out


def worker_stacks(pid, maps):
    """{(start, end)} of the civetweb worker threads' stack mappings, found
    through each blocked thread's stack pointer."""
    stacks = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                syscall = f.read().split()
        except OSError:
            continue
        if comm != "civetweb-worker" or syscall[0] == "running":
            continue
        sp = int(syscall[-2], 16)
        for start, end, _, _ in maps:
            if start <= sp < end:
                stacks.add((start, end))
                break
    return stacks


def touched_depth(pid, start, end):
    """Bytes from the top of a stack mapping down to its lowest touched page."""
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(start // PAGE * 8)
        data = f.read((end - start) // PAGE * 8)
    for i in range(len(data) // 8):
        if struct.unpack_from("<Q", data, i * 8)[0] >> 62:  # present or swapped
            return end - (start + i * PAGE)
    return 0


def memory(pid):
    maps = smaps(pid)
    stacks = worker_stacks(pid, maps)
    stack_rss = sum(rss for s, e, _, rss in maps if (s, e) in stacks)
    crypto = sum(rss for _, _, name, rss in maps if "libcrypto.so" in name)
    anon = sum(rss for s, e, name, rss in maps
               if not name.startswith("/") and (s, e) not in stacks)
    depths = sorted(touched_depth(pid, s, e) for s, e in stacks)
    stack_size = max((e - s for s, e in stacks), default=0)
    return dict(stack_rss=stack_rss, crypto=crypto, anon=anon, depths=depths,
                workers=len(stacks), stack_size=stack_size)


LIBVIRT_URI = None  # --libvirt: run the libvirt collector on this URI too


class Exporter:
    def __init__(self, binary, web_config=None, extra=()):
        base = BASE_ARGS
        if LIBVIRT_URI:
            base = [a for a in BASE_ARGS if a != "--no-collector.libvirt"]
            base += ["--libvirt.uri", LIBVIRT_URI]
        args = [binary, "--web.listen-address", "127.0.0.1:0", *base, *extra]
        if web_config:
            args += ["--web.config.file", web_config]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        self.port = None
        for line in self.p.stdout:
            m = re.search(r"listening on .*port=(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            raise RuntimeError(f"{binary} did not start")
        time.sleep(0.5)  # civetweb starts its workers after the listening line

    def close(self):
        self.p.terminate()
        self.p.wait(timeout=10)


def get(port, path, tls=False, auth=None, gzip=False, method="GET"):
    scheme = "https" if tls else "http"
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}{path}", method=method)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    if gzip:
        req.add_header("Accept-Encoding", "gzip")
    ctx = ssl._create_unverified_context() if tls else None  # loopback, self-signed
    with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
        return r.read()


def open_slow(port, n, header):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(header)
        socks.append(s)
    time.sleep(1)
    return socks


def every_worker_serves(port, workers):
    """Holds `workers` connections with an unfinished GET /metrics (one per
    worker), then finishes them all: every worker has served a request, the
    state a long-running exporter reaches. Returns how many got a 200."""
    socks = open_slow(port, workers, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for s in socks:
        s.sendall(b"Connection: close\r\n\r\n")
    ok = 0
    for s in socks:
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except OSError:
            pass
        ok += data.startswith(b"HTTP/1.1 200")
        s.close()
    return ok


def connection_figures(binary, n):
    e = Exporter(binary)
    try:
        for _ in range(20):
            get(e.port, "/metrics")
        rss, threads, vsz = proc_status(e.p.pid)
        out = dict(idle=rss, threads=threads, vsz=vsz, **memory(e.p.pid))
        socks = open_slow(e.port, n, b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        out["slow"] = proc_status(e.p.pid)[0]
        t0 = time.monotonic()
        get(e.port, "/metrics")
        out["scrape_ms"] = (time.monotonic() - t0) * 1000
        for s in socks:
            s.close()
        socks = open_slow(e.port, n, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 16000)
        out["big"] = proc_status(e.p.pid)[0]
        for s in socks:
            s.close()
        time.sleep(0.5)
        out["served"] = every_worker_serves(e.port, out["workers"])
        out["served_rss"], out["served_depths"] = proc_status(e.p.pid)[0], memory(e.p.pid)
        return out
    finally:
        e.close()


def make_web_configs(d):
    """{(tls, auth): web config path} for TLS only, basic auth only, both."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", "server.key", "-out", "server.crt"],
                   cwd=d, check=True, capture_output=True, timeout=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
        hashed = crypt.crypt("bench", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))
    tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
    auth = f"basic_auth_users:\n  bench: '{hashed}'\n"
    out = {}
    for key, text in (((True, False), tls), ((False, True), auth), ((True, True), tls + auth)):
        out[key] = os.path.join(d, f"web-{key[0]}-{key[1]}.yml")
        with open(out[key], "w") as f:
            f.write(text)
    return out


STACK_CASES = [
    ("idle (no request)", []),
    ("/metrics gzip", [("/metrics", True)]),
    ("/metrics", [("/metrics", False)]),
    ("/ (status page)", [("/", False)]),
    ("/api/v1/targets", [("/api/v1/targets", False)]),
    ("/api/v1/events", [("/api/v1/events", False)]),
    ("400 (16,000-byte header)", "big"),
]
ALL_PATHS = [("/metrics", True), ("/metrics", False), ("/", False), ("/api/v1/targets", False),
             ("/api/v1/events", False)]


def stack_figures(binary, tmp):
    """[(case, max depth, median depth)] in bytes, one process per case."""
    cases = list(STACK_CASES)
    webs = make_web_configs(tmp)
    config = os.path.join(tmp, "config.yml")
    with open(config, "w") as f:
        f.write("libvirt:\n  uri: qemu:///system\n  samples: 3\nchrony:\n"
                "  address: unix:///run/chrony/chronyd.sock\nntp:\n"
                "  servers: [127.0.0.1:123, \"[::1]:1123\"]\n"
                "web:\n  allowed_hosts: [127.0.0.1, localhost]\n")
    cases += [("POST /-/reload (config file re-read)", [("/-/reload", "POST")]),
              ("basic auth (bcrypt cost 10), every endpoint", ALL_PATHS),
              ("TLS, every endpoint", ALL_PATHS),
              ("TLS + basic auth, every endpoint", ALL_PATHS)]
    out = []
    for name, requests in cases:
        tls, auth = "TLS" in name, "auth" in name
        web = webs.get((tls, auth))
        reload = name.startswith("POST")
        e = Exporter(binary, web, ["--web.enable-lifecycle", "--config.file", config]
                     if reload else [])
        try:
            if requests == "big":
                for s in open_slow(e.port, 3, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 16000):
                    s.close()
            else:
                for _ in range(3):
                    for path, how in requests:
                        get(e.port, path, tls=tls, auth="bench:bench" if auth else None,
                            gzip=how is True, method="POST" if how == "POST" else "GET")
            m = memory(e.p.pid)
            out.append((name, m["depths"][-1], m["depths"][len(m["depths"]) // 2]))
        finally:
            e.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exporter", action="append",
                    help="binary to measure (repeat to compare); default "
                         "build/exporter/vmtime_exporter")
    ap.add_argument("--connections", type=int, default=300)
    ap.add_argument("--no-stack", action="store_true", help="skip the stack high-water cases")
    ap.add_argument("--libvirt", metavar="URI",
                    help="also run the libvirt collector on URI (e.g. test:///default): "
                         "libvirt's own initialisation is then part of the figures")
    args = ap.parse_args()
    global LIBVIRT_URI
    LIBVIRT_URI = args.libvirt
    binaries = args.exporter or ["build/exporter/vmtime_exporter"]
    n = args.connections
    results = collections.OrderedDict()
    for b in binaries:
        r = connection_figures(b, n)
        print(f"{b}:\n"
              f"  idle after 20 scrapes: RSS {r['idle'] / MIB:.1f} MiB, {r['threads']} threads, "
              f"VSZ {r['vsz'] / MIB:.0f} MiB\n"
              f"    of which {r['workers']} worker stacks ({r['stack_size'] // 1024} KiB each) "
              f"{r['stack_rss'] / MIB:.2f} MiB, libcrypto.so.3 {r['crypto'] / MIB:.2f} MiB, "
              f"other anonymous {r['anon'] / MIB:.2f} MiB\n"
              f"  {n} slow connections (half a header): RSS {r['slow'] / MIB:.1f} MiB; "
              f"one scrape with them open {r['scrape_ms']:.1f} ms\n"
              f"  {n} connections sending a 16,000-byte header: RSS {r['big'] / MIB:.1f} MiB\n"
              f"  every worker served one request ({r['served']} of {r['workers']} concurrent "
              f"GET /metrics answered 200): RSS {r['served_rss'] / MIB:.1f} MiB, worker stacks "
              f"{r['served_depths']['stack_rss'] / MIB:.2f} MiB")
        if not args.no_stack:
            with tempfile.TemporaryDirectory(prefix="vmtime-bench-") as tmp:
                for name, high, median in stack_figures(b, tmp):
                    print(f"  worker stack touched, {name}: deepest {high // 1024} KiB "
                          f"(median worker {median // 1024} KiB)")
        results[b] = r
    if len(binaries) == 2:
        a, b = results[binaries[0]], results[binaries[1]]
        print("second / first: " + ", ".join(
            f"{k} {b[k] / a[k]:.2f} ({(b[k] - a[k]) / MIB:+.1f} MiB)"
            for k in ("idle", "slow", "big", "served_rss", "vsz")))


if __name__ == "__main__":
    main()
