#!/usr/bin/python3
"""Basic auth under a wrong-password flood (docs/authentication.md).

Starts a private exporter (timex collector only, 127.0.0.1, port 0) with one
bcrypt user, then for --seconds runs --clients client processes that send
wrong passwords as fast as they get answers, while the main process scrapes
/metrics with the valid credentials every 100 ms. Prints the exporter's CPU
seconds (utime + stime from /proc) burned during the flood, the answers the
flood got, and the valid-scrape latency. Loopback only; the exporter is
stopped at the end, also on failure.

  bench/auth_flood.py --exporter build/exporter/vmtime_exporter [--mode same|distinct]

--mode same: every request repeats one wrong password (the failure cache
answers); distinct: every request a new wrong password (each would need a
bcrypt check).
"""
import argparse
import base64
import crypt
import http.client
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def header(user_pass):
    return "Basic " + base64.b64encode(user_pass.encode()).decode()


def request(port, auth, path="/metrics"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path, headers={"Authorization": auth})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def flood(port, seconds, mode, index, out):
    counts = {}
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        pw = "wrong" if mode == "same" else f"wrong-{index}-{n}"
        n += 1
        try:
            s = request(port, header("alice:" + pw))
        except OSError:
            s = "error"
        counts[s] = counts.get(s, 0) + 1
    out.put(counts)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exporter", required=True)
    ap.add_argument("--cost", type=int, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--mode", choices=["same", "distinct"], default="same")
    a = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="vmtime-authflood-")
    web = os.path.join(tmp.name, "web.yml")
    with open(web, "w") as f:
        f.write("basic_auth_users:\n  alice: %s\n" %
                crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << a.cost)))
    log = open(os.path.join(tmp.name, "log"), "w+")
    proc = subprocess.Popen([a.exporter, "--no-collector.chrony", "--no-collector.ntp",
                             "--no-collector.libvirt", "--web.listen-address", "127.0.0.1:0",
                             "--web.config.file", web], stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            m = re.search(r"listening on .* port=(\d+)", log.read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        if port is None:
            log.seek(0)
            sys.exit("exporter did not start:\n" + log.read())
        good = header("alice:s3cret")
        # First valid scrape (bcrypt once, then cached); retried on 429.
        t0 = time.monotonic()
        while request(port, good) != 200:
            if time.monotonic() - t0 > 10:
                sys.exit("valid credentials refused")
            time.sleep(0.05)
        idle = []
        for _ in range(20):
            t = time.monotonic()
            assert request(port, good) == 200
            idle.append((time.monotonic() - t) * 1e3)

        out = multiprocessing.Queue()
        clients = [multiprocessing.Process(target=flood, args=(port, a.seconds, a.mode, i, out))
                   for i in range(a.clients)]
        cpu0 = cpu_seconds(proc.pid)
        w0 = time.monotonic()
        for c in clients:
            c.start()
        latencies, statuses = [], {}
        while time.monotonic() - w0 < a.seconds:
            t = time.monotonic()
            s = request(port, good)
            latencies.append((time.monotonic() - t) * 1e3)
            statuses[s] = statuses.get(s, 0) + 1
            time.sleep(0.1)
        counts = {}
        for _ in clients:
            for k, v in out.get(timeout=60).items():
                counts[k] = counts.get(k, 0) + v
        for c in clients:
            c.join(timeout=10)
        wall = time.monotonic() - w0
        cpu = cpu_seconds(proc.pid) - cpu0
        lat = sorted(latencies)
        print(f"exporter={a.exporter} cost={a.cost} clients={a.clients} mode={a.mode} "
              f"loadavg(1m)={os.getloadavg()[0]:.1f} cores={os.cpu_count()}")
        print(f"flood: {a.seconds:.0f} s, answers {dict(sorted(counts.items(), key=str))}")
        print(f"exporter CPU during flood: {cpu:.2f} s over {wall:.2f} s wall "
              f"({cpu / wall * 100:.0f}% of one core)")
        print(f"valid scrapes idle:  median {statistics.median(idle):.1f} ms, max {max(idle):.1f} ms")
        print(f"valid scrapes flood: n={len(lat)} statuses={statuses} median "
              f"{statistics.median(lat):.1f} ms, p90 {lat[int(len(lat) * 0.9)]:.1f} ms, "
              f"max {lat[-1]:.1f} ms")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
