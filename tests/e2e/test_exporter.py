#!/usr/bin/python3
"""The exporter binary end to end: flags, config errors, HTTP endpoints,
promtool, reload and signals. Uses only the host's timex collector (plus
libvirt's test driver where a VM is needed), so it runs anywhere."""
import crypt
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from exporter_proc import EXPORTER, Exporter, metric_value

BASE_ARGS = ["--no-collector.chrony", "--no-collector.ntp", "--no-collector.libvirt"]


def run(*args, timeout=20):
    return subprocess.run([EXPORTER, *args], capture_output=True, text=True, timeout=timeout)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0
    for flag in ["--config.file", "--web.listen-address", "--web.telemetry-path", "--log.level",
                 "--log.format", "--libvirt.uri", "--collector.timex", "--no-collector.timex",
                 "--config.check", "--version"]:
        assert flag in r.stdout, flag
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.startswith("vmtime_exporter, version ")


def test_bad_flag_exits_2():
    r = run("--web.listen-adress", ":1")
    assert r.returncode == 2
    assert "listen-adress" in r.stderr


def test_config_check(tmp_path):
    good = tmp_path / "good.yml"
    good.write_text("collectors:\n  timex: {interval: 30s}\n")
    r = run("--config.file", str(good), "--config.check")
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout

    bad = tmp_path / "bad.yml"
    bad.write_text("collectors:\n  timex:\n    interval: soon\n")
    r = run("--config.file", str(bad), "--config.check")
    assert r.returncode == 2
    assert f"{bad}:3:15: collectors.timex.interval: invalid duration 'soon'" in r.stderr, r.stderr


def test_bad_config_file_exits_2_with_position(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("libvirt:\n  uri: qemu:///system\n  agent_timeot: 2s\n")
    r = run("--config.file", str(bad), "--web.listen-address", "127.0.0.1:0")
    assert r.returncode == 2
    assert f"{bad}:3:3: libvirt.agent_timeot: unknown key" in r.stderr, r.stderr


def test_show_default_is_a_valid_config(tmp_path):
    r = run("--config.show-default")
    assert r.returncode == 0
    p = tmp_path / "default.yml"
    p.write_text(r.stdout)
    assert run("--config.file", str(p), "--config.check").returncode == 0


def test_metrics_timex_build_info_and_promtool_clean():
    with Exporter(*BASE_ARGS) as e:
        e.wait_metric(r'^vmtime_collector_success\{collector="timex"\} 1$')
        text = e.metrics()
        assert "vmtime_host_timex_offset_seconds" in text
        assert "vmtime_host_timex_sync_status" in text
        # Without chronyd the host verdict comes from the kernel.
        assert re.search(r'^vmtime_host_synchronised\{source="kernel"\} [01]$', text, re.M), text
        assert metric_value(text, "vmtime_exporter_build_info") == 1
        assert metric_value(text, "vmtime_config_last_reload_successful") == 1
        promtool = shutil.which("promtool")
        assert promtool, "promtool (Debian package prometheus) is required"
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


def test_metrics_with_a_vm_pass_promtool():
    # libvirt's test driver: one running domain "test" with a frozen clock.
    with Exporter("--no-collector.chrony", "--no-collector.ntp",
                  "--libvirt.uri", "test:///default") as e:
        e.wait_metric(r'^vmtime_vm_health_score\{domain="test"')
        text = e.metrics()
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def fetch_metrics(e, accept_encoding=None, method="GET"):
    """Raw /metrics: (status, body bytes as sent, headers)."""
    import urllib.request
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding is not None else {}
    req = urllib.request.Request(e.base + "/metrics", method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read(), dict(r.headers)


def test_metrics_gzip_decodes_to_the_plain_body_and_promtool_is_clean():
    import gzip
    with Exporter("--no-collector.chrony", "--no-collector.ntp",
                  "--libvirt.uri", "test:///default") as e:
        e.wait_metric(r'^vmtime_vm_health_score\{domain="test"')
        # A snapshot may be published between two requests: retry until a
        # gzip body and a plain body of the same snapshot were fetched.
        for _ in range(20):
            status, packed, headers = fetch_metrics(e, "gzip, deflate")
            assert status == 200
            assert headers.get("Content-Encoding") == "gzip", headers
            assert headers.get("Vary") == "Accept-Encoding", headers
            assert int(headers["Content-Length"]) == len(packed)
            status, plain, headers = fetch_metrics(e)
            assert status == 200 and "Content-Encoding" not in headers, headers
            assert headers.get("Vary") == "Accept-Encoding", headers
            if gzip.decompress(packed) == plain:
                break
            time.sleep(0.2)
        else:
            pytest.fail("gzip body never decoded to the plain body of the same snapshot")
        assert b'vmtime_vm_health_score{domain="test"' in plain
        r = subprocess.run(["promtool", "check", "metrics"], input=gzip.decompress(packed),
                           capture_output=True, timeout=30)
        assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
        # q=0 refuses gzip; HEAD sends the headers of the encoding it would use, no body.
        status, body, headers = fetch_metrics(e, "gzip;q=0, identity")
        assert status == 200 and "Content-Encoding" not in headers and body.startswith(b"# HELP")
        status, body, headers = fetch_metrics(e, "gzip", method="HEAD")
        assert status == 200 and body == b"" and headers.get("Content-Encoding") == "gzip"


def test_http_endpoints():
    with Exporter(*BASE_ARGS) as e:
        assert e.get("/healthz")[0] == 200
        deadline = time.monotonic() + 20
        while e.get("/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert e.get("/readyz")[0] == 200
        status, body, headers = e.get("/")
        assert status == 200 and "vmtime-exporter" in body
        assert headers["Content-Type"].startswith("text/html")
        status, body, headers = e.get("/api/v1/targets")
        assert status == 200 and headers["Content-Type"] == "application/json"
        import json
        doc = json.loads(body)
        assert doc["vms"] == [] and doc["host"]["timex"]["synchronised"] in (True, False)
        assert doc["host"]["reference"]["synchronised"] in (True, False), doc["host"]
        assert e.get("/nope")[0] == 404
        assert e.get("/metrics", method="POST", data=b"")[0] == 405
        assert e.get("/-/reload")[0] == 405
        status, body, headers = e.get("/metrics", method="HEAD")
        assert status == 200 and body == ""


def test_custom_telemetry_path():
    with Exporter(*BASE_ARGS, "--web.telemetry-path", "/prom") as e:
        assert e.get("/prom")[0] == 200
        assert e.get("/metrics")[0] == 404


def test_bad_reload_keeps_old_config_then_good_reload(tmp_path):
    cfg = "collectors:\n  timex: {interval: 1s}\n"
    with Exporter(*BASE_ARGS, config_text=cfg) as e:
        e.wait_metric(r'^vmtime_collector_success\{collector="timex"\} 1$')
        with open(e.config_path, "w") as f:
            f.write("collectors:\n  timex: {interval: 1s, bogus: 1}\n")
        e.signal(signal.SIGHUP)
        e.wait_log(r"config reload failed.*config.yml:2:\d+: collectors.timex.bogus: unknown key")
        e.wait_metric(r"^vmtime_config_last_reload_successful 0$")
        # Still serving, still collecting with the old configuration.
        before = metric_value(e.metrics(), "vmtime_collector_last_run_timestamp_seconds",
                              {"collector": "timex"})
        time.sleep(2.5)
        after = metric_value(e.metrics(), "vmtime_collector_last_run_timestamp_seconds",
                             {"collector": "timex"})
        assert after > before
        status, body, _ = e.get("/-/reload", method="POST", data=b"")
        assert status == 500 and "bogus" in body
        with open(e.config_path, "w") as f:
            f.write("collectors:\n  timex: {interval: 2s}\n")
        status, body, _ = e.get("/-/reload", method="POST", data=b"")
        assert status == 200, body
        assert metric_value(e.metrics(), "vmtime_config_last_reload_successful") == 1


def test_sigterm_stops_within_two_seconds():
    e = Exporter(*BASE_ARGS)
    try:
        e.wait_metric(r'^vmtime_collector_success\{collector="timex"\} 1$')
        t0 = time.monotonic()
        e.signal(signal.SIGTERM)
        rc = e.proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        assert rc == 0
        assert elapsed < 2.0, f"took {elapsed:.2f}s"
    finally:
        e.stop()


def test_listen_failure_exits_1():
    with Exporter(*BASE_ARGS) as e:
        r = run(*BASE_ARGS, "--web.listen-address", f"127.0.0.1:{e.port}")
        assert r.returncode == 1
        assert "cannot listen" in r.stderr


def test_basic_auth_and_tls_refusal(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: %s\n" %
                   crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)))
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        import base64
        assert e.get("/metrics")[0] == 401
        bad = base64.b64encode(b"alice:wrong").decode()
        assert e.get("/metrics", headers={"Authorization": "Basic " + bad})[0] == 401
        good = base64.b64encode(b"alice:s3cret").decode()
        assert e.get("/metrics", headers={"Authorization": "Basic " + good})[0] == 200
        assert e.get("/healthz")[0] == 200  # liveness stays open
    tls = tmp_path / "tls.yml"
    tls.write_text("tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n")
    r = run(*BASE_ARGS, "--web.config.file", str(tls), "--web.listen-address", "127.0.0.1:0")
    assert r.returncode == 2
    assert f"{tls}:1:1: tls_server_config: TLS is not supported" in r.stderr, r.stderr


def test_json_log_format_is_parseable():
    import json
    with Exporter(*BASE_ARGS, "--log.format", "json") as e:
        e.wait_log(r"listening on")
        for line in e.log().splitlines():
            doc = json.loads(line)
            assert {"ts", "level", "msg"} <= doc.keys()
