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
    with Exporter(*BASE_ARGS, "--web.enable-lifecycle", config_text=cfg) as e:
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


def test_reload_outcome_is_visible_at_once_and_readyz_keeps_answering():
    """Each reload that returns 200 is on /metrics at once (published in order
    with the poller's own snapshots, never overwritten by an older one), the
    time of the last success only moves forward, and /readyz answers 200
    throughout, while the collector is re-created by every other reload."""
    cfg = "collectors:\n  timex: {interval: 1s}\n"
    # POST /-/reload may be gated by --web.enable-lifecycle (issue 14 item 4).
    lifecycle = [f for f in ["--web.enable-lifecycle"] if f in run("--help").stdout]
    with Exporter(*BASE_ARGS, *lifecycle, config_text=cfg) as e:
        e.wait_metric(r'^vmtime_collector_success\{collector="timex"\} 1$')
        last = 0.0
        for i in range(10):
            with open(e.config_path, "w") as f:
                f.write("collectors:\n  timex: {interval: %ds}\n" % (1 + i % 2))
            status, body, _ = e.get("/-/reload", method="POST", data=b"")
            assert status == 200, body
            text = e.metrics()
            assert metric_value(text, "vmtime_config_last_reload_successful") == 1, i
            ts = metric_value(text, "vmtime_config_last_reload_success_timestamp_seconds")
            assert ts >= last, (i, ts, last)
            last = ts
            assert e.get("/readyz")[0] == 200, i
        # A refused reload is visible at once too, and keeps the last success time.
        with open(e.config_path, "w") as f:
            f.write("collectors:\n  timex: {bogus: 1}\n")
        assert e.get("/-/reload", method="POST", data=b"")[0] == 500
        text = e.metrics()
        assert metric_value(text, "vmtime_config_last_reload_successful") == 0
        assert metric_value(text, "vmtime_config_last_reload_success_timestamp_seconds") == last


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


def bcrypt(password, cost=5):
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << cost))


def basic(user_pass, scheme="Basic"):
    import base64
    return {"Authorization": scheme + " " + base64.b64encode(user_pass).decode()}


def auth_get(e, path, user_pass=None, scheme="Basic", method="GET", timeout_s=10):
    """A request with basic auth; retries while the bcrypt budget answers 429
    (one uncached check at a time, then a pause of three times its length)."""
    headers = basic(user_pass, scheme) if user_pass is not None else {}
    deadline = time.monotonic() + timeout_s
    while True:
        status, body, hdrs = e.get(path, method=method, headers=headers,
                                   data=b"" if method == "POST" else None)
        if status != 429 or time.monotonic() > deadline:
            return status, body, hdrs
        assert hdrs.get("Retry-After") == "1"
        time.sleep(0.02)


def test_basic_auth_and_tls_config_errors(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: %s\n" % bcrypt("s3cret"))
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        status, _, headers = e.get("/metrics")
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="vmtime-exporter"'
        assert auth_get(e, "/metrics", b"alice:wrong")[0] == 401
        assert auth_get(e, "/metrics", b"mallory:s3cret")[0] == 401
        assert auth_get(e, "/metrics", b"alice:s3cret")[0] == 200
        # RFC 7617: the scheme is case-insensitive.
        assert auth_get(e, "/metrics", b"alice:s3cret", scheme="basic")[0] == 200
        assert auth_get(e, "/metrics", b"alice:s3cret", scheme="BASIC")[0] == 200
        # A NUL in the password is refused, not cut off.
        assert auth_get(e, "/metrics", b"alice:s3cret\0anything")[0] == 401
        assert e.get("/metrics", headers={"Authorization": "Basic !!!!"})[0] == 401
        assert e.get("/metrics", headers={"Authorization": "Bearer abc"})[0] == 401
        assert e.get("/healthz")[0] == 200  # liveness stays open
        # Lifecycle is off: 403 after auth, 401 before it.
        assert e.get("/-/reload", method="POST", data=b"")[0] == 401
        status, body, _ = auth_get(e, "/-/reload", b"alice:s3cret", method="POST")
        assert status == 403 and body == "Lifecycle API is not enabled.\n"
    tls = tmp_path / "tls.yml"
    tls.write_text("tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n")
    r = run(*BASE_ARGS, "--web.config.file", str(tls), "--web.listen-address", "127.0.0.1:0")
    assert r.returncode == 2
    assert f"{tls}: tls_server_config.cert_file: {tmp_path}/a.pem: No such file or directory" \
        in r.stderr, r.stderr


def test_json_log_format_is_parseable():
    import json
    with Exporter(*BASE_ARGS, "--log.format", "json") as e:
        e.wait_log(r"listening on")
        for line in e.log().splitlines():
            doc = json.loads(line)
            assert {"ts", "level", "msg"} <= doc.keys()


def test_lifecycle_off_by_default_sighup_still_reloads():
    cfg = "collectors:\n  timex: {interval: 1s}\n"
    with Exporter(*BASE_ARGS, config_text=cfg) as e:
        e.wait_log(r"listening on .* lifecycle=off")
        status, body, _ = e.get("/-/reload", method="POST", data=b"")
        assert status == 403 and body == "Lifecycle API is not enabled.\n"
        assert e.get("/-/reload", method="PUT", data=b"")[0] == 403
        assert e.get("/-/reload")[0] == 405
        assert e.find_log(r"config reloaded") is None
        e.signal(signal.SIGHUP)
        e.wait_log(r"config reloaded from")


def test_reload_applies_web_config_users(tmp_path):
    """Users added and removed by SIGHUP and by POST /-/reload; a broken web
    config refuses the reload and keeps the running users."""
    web = tmp_path / "web.yml"
    alice, bob = bcrypt("a-pass"), bcrypt("b-pass")
    web.write_text(f"basic_auth_users:\n  alice: {alice}\n")
    with Exporter(*BASE_ARGS, "--web.config.file", str(web), "--web.enable-lifecycle") as e:
        assert auth_get(e, "/metrics", b"alice:a-pass")[0] == 200
        assert auth_get(e, "/metrics", b"bob:b-pass")[0] == 401

        # SIGHUP adds bob.
        web.write_text(f"basic_auth_users:\n  alice: {alice}\n  bob: {bob}\n")
        e.signal(signal.SIGHUP)
        e.wait_log(r"config reloaded from .*2 basic auth users")
        assert auth_get(e, "/metrics", b"bob:b-pass")[0] == 200

        # POST removes alice, whose success was cached: refused at once.
        web.write_text(f"basic_auth_users:\n  bob: {bob}\n")
        status, body, _ = auth_get(e, "/-/reload", b"alice:a-pass", method="POST")
        assert status == 200, body
        assert auth_get(e, "/metrics", b"alice:a-pass")[0] == 401
        assert auth_get(e, "/metrics", b"bob:b-pass")[0] == 200

        # A broken file: refused with file:line:column, bob still works,
        # alice still refused.
        web.write_text("basic_auth_users:\n  alice: not-a-hash\n")
        e.signal(signal.SIGHUP)
        e.wait_log(r"config reload failed, keeping the running configuration: "
                   + re.escape(str(web)) + r":2:10: basic_auth_users.alice: expected a bcrypt hash")
        assert auth_get(e, "/metrics", b"bob:b-pass")[0] == 200
        assert auth_get(e, "/metrics", b"alice:a-pass")[0] == 401
        assert metric_value(auth_get(e, "/metrics", b"bob:b-pass")[1],
                            "vmtime_config_last_reload_successful") == 0
        status, body, _ = auth_get(e, "/-/reload", b"bob:b-pass", method="POST")
        assert status == 500 and "expected a bcrypt hash" in body
        web.write_text("basic_auth_users: [\n")
        status, body, _ = auth_get(e, "/-/reload", b"bob:b-pass", method="POST")
        assert status == 500 and "invalid YAML" in body, body
        assert auth_get(e, "/metrics", b"bob:b-pass")[0] == 200

        # Fixed again: the reload succeeds, users as written.
        web.write_text(f"basic_auth_users:\n  alice: {alice}\n")
        status, body, _ = auth_get(e, "/-/reload", b"bob:b-pass", method="POST")
        assert status == 200, body
        assert auth_get(e, "/metrics", b"alice:a-pass")[0] == 200
        assert auth_get(e, "/metrics", b"bob:b-pass")[0] == 401


def test_bcrypt_cost_above_12_warns(tmp_path):
    web = tmp_path / "web.yml"
    # A syntactically valid cost-13 hash; it is never checked here.
    web.write_text("basic_auth_users:\n  alice: $2b$13$" + "a" * 53 + "\n")
    with Exporter(*BASE_ARGS, "--web.config.file", str(web)) as e:
        e.wait_log(re.escape(str(web)) + r":2:10: basic_auth_users.alice: bcrypt cost 13 is above 12")
