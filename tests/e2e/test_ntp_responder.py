#!/usr/bin/python3
"""The NTP prober against a test-owned UDP responder on 127.0.0.1 that sends
malformed, truncated, kiss-o'-death, wrong-origin, unsynchronised, too-high
stratum (11, above the default ntp.max_stratum 9) and silent replies. Each
server must get its own clear outcome (in the metrics and in the log line
naming every server), the exporter must neither crash nor hang, and a good
server next to them must stay usable. Requests carry random transmit bits,
not the host's clock."""
import os
import re
import socket
import struct
import threading
import time

import pytest

from exporter_proc import Exporter, metric_value

NTP_EPOCH = 2208988800


def ntp_ts(t):
    sec = int(t) + NTP_EPOCH
    frac = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", sec & 0xFFFFFFFF, frac)


def reply(request, li=0, stratum=2, refid=b"\x7f\x00\x00\x01", origin=None):
    now = time.time()
    origin = request[40:48] if origin is None else origin
    return (bytes([(li << 6) | (4 << 3) | 4, stratum, 6, 0xEC])
            + struct.pack("!II", 1 << 8, 1 << 8) + refid
            + ntp_ts(now - 10) + origin + ntp_ts(now) + ntp_ts(now))


BEHAVIOURS = {
    "good": lambda req: reply(req),
    "truncated": lambda req: reply(req)[:20],
    "garbage": lambda req: os.urandom(48),
    "kod_rate": lambda req: reply(req, li=3, stratum=0, refid=b"RATE"),
    "kod_deny": lambda req: reply(req, li=3, stratum=0, refid=b"DENY"),
    "wrong_origin": lambda req: reply(req, origin=b"\x01" * 8),
    "leap3": lambda req: reply(req, li=3, stratum=2),
    "stratum16": lambda req: reply(req, stratum=16),
    "stratum11": lambda req: reply(req, stratum=11),
    "silent": None,
}


class Responder:
    def __init__(self, behaviour):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.behaviour = BEHAVIOURS[behaviour]
        self.stop = False
        self.requests = 0
        self.transmits = []  # (request's transmit field, wall clock at receipt)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            self.requests += 1
            if len(data) >= 48:
                self.transmits.append((struct.unpack("!Q", data[40:48])[0], time.time()))
            if self.behaviour and len(data) >= 48:
                self.sock.sendto(self.behaviour(data), addr)

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def responders():
    rs = {name: Responder(name) for name in BEHAVIOURS}
    try:
        yield rs
    finally:
        for r in rs.values():
            r.close()


def server(rs, name):
    return f"127.0.0.1:{rs[name].port}"


def test_each_bad_reply_gets_its_outcome(responders):
    bad = [n for n in BEHAVIOURS if n != "good"]
    config = ("collectors:\n  libvirt: {enabled: false}\n  chrony: {enabled: false}\n"
              "  timex: {enabled: false}\n  ntp: {interval: 1s, max_retries: 0}\n"
              "ntp:\n  timeout: 500ms\n  servers: [%s]\n"
              % ", ".join(server(responders, n) for n in bad))
    with Exporter(config_text=config) as e:
        e.wait_log(r"collector ntp: failed", timeout=20)
        text = e.metrics()
        assert metric_value(text, "vmtime_ntp_usable_sources") == 0
        assert metric_value(text, "vmtime_ntp_configured_sources") == len(bad)
        for n in bad:
            assert metric_value(text, "vmtime_ntp_server_usable", {"server": server(responders, n)}) == 0, n
            assert responders[n].requests > 0, n
        for n in ("kod_rate", "kod_deny"):
            code = n.split("_")[1].upper()
            assert metric_value(text, "vmtime_ntp_server_kiss_code_info",
                                {"server": server(responders, n), "code": code}) == 1, n
        for n in ("truncated", "garbage", "wrong_origin", "silent"):
            assert metric_value(text, "vmtime_ntp_server_up", {"server": server(responders, n)}) == 0, n
        for n in ("leap3", "stratum16", "stratum11"):
            assert metric_value(text, "vmtime_ntp_server_up", {"server": server(responders, n)}) == 1, n
        assert metric_value(text, "vmtime_ntp_server_leap", {"server": server(responders, "leap3")}) == 3
        assert metric_value(text, "vmtime_ntp_server_stratum",
                            {"server": server(responders, "stratum16")}) == 16
        assert metric_value(text, "vmtime_ntp_server_stratum",
                            {"server": server(responders, "stratum11")}) == 11
        # The failure log line names every server with its reason.
        line = e.find_log(r"collector ntp: failed.*").group(0)
        for n in bad:
            assert server(responders, n) in line, (n, line)
        assert "kiss-o'-death RATE" in line and "kiss-o'-death DENY" in line, line
        assert "leap indicator 3" in line and "stratum 16" in line, line
        assert "stratum 11 above ntp.max_stratum 9" in line, line
        # The reply echoing other bits than our request's is named as such.
        assert ("last reply rejected: origin timestamp mismatch: the reply echoes "
                "0101010101010101, our request carried ") in line, line
        # Still alive and answering after several rounds of bad replies.
        time.sleep(2)
        assert e.proc.poll() is None
        assert e.get("/healthz")[0] == 200


def test_good_server_stays_usable_among_bad_ones(responders):
    config = ("collectors:\n  libvirt: {enabled: false}\n  chrony: {enabled: false}\n"
              "  timex: {enabled: false}\n  ntp: {interval: 1s}\n"
              "ntp:\n  timeout: 500ms\n  servers: [%s, %s, %s]\n"
              % (server(responders, "good"), server(responders, "garbage"),
                 server(responders, "silent")))
    with Exporter(config_text=config) as e:
        e.wait_metric(r'^vmtime_collector_success\{collector="ntp"\} 1$', timeout=20)
        text = e.metrics()
        assert metric_value(text, "vmtime_ntp_usable_sources") == 1
        good = server(responders, "good")
        assert metric_value(text, "vmtime_ntp_server_usable", {"server": good}) == 1
        assert metric_value(text, "vmtime_ntp_server_stratum", {"server": good}) == 2
        # The responder stamps its receive/transmit with this host's clock: offset ~ 0.
        # (The exporter keeps its own send time: the request does not carry it.)
        assert abs(metric_value(text, "vmtime_ntp_server_offset_seconds", {"server": good})) < 0.05
    # Data minimisation: each request's transmit timestamp is random bits, not
    # the clock (a clock value would be within seconds of the receipt time;
    # random bits are that close with probability ~1e-8 per request), and no
    # two requests carry the same bits.
    sent = responders["good"].transmits
    assert sent, "the good responder got no request"
    for bits, received in sent:
        clock_s = (bits >> 32) - NTP_EPOCH
        assert abs(clock_s - received) > 3600, (hex(bits), received)
    assert len({bits for bits, _ in sent}) == len(sent), sent


def test_max_stratum_is_configurable(responders):
    """A stratum-11 server is unusable at the default ntp.max_stratum (9) and
    usable once the configuration allows stratum 11."""
    base = ("collectors:\n  libvirt: {enabled: false}\n  chrony: {enabled: false}\n"
            "  timex: {enabled: false}\n  ntp: {interval: 1s, max_retries: 0}\n"
            "ntp:\n  timeout: 500ms\n  servers: [%s]\n" % server(responders, "stratum11"))
    with Exporter(config_text=base) as e:
        e.wait_log(r"collector ntp: failed", timeout=20)
        text = e.metrics()
        labels = {"server": server(responders, "stratum11")}
        assert metric_value(text, "vmtime_ntp_server_up", labels) == 1
        assert metric_value(text, "vmtime_ntp_server_usable", labels) == 0
        assert metric_value(text, "vmtime_ntp_usable_sources") == 0
    with Exporter(config_text=base + "  max_stratum: 11\n") as e:
        e.wait_metric(r'^vmtime_collector_success\{collector="ntp"\} 1$', timeout=20)
        text = e.metrics()
        assert metric_value(text, "vmtime_ntp_server_usable",
                            {"server": server(responders, "stratum11")}) == 1
        assert metric_value(text, "vmtime_ntp_usable_sources") == 1
