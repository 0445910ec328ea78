#!/usr/bin/python3
"""docker/compose.yml is hardened and its Alertmanager notifications reach a
real receiver (docs/security.md, "Docker compose").

- `docker-compose config` (Debian's docker-compose) resolves the file; every
  service runs with no-new-privileges, all capabilities dropped and a
  read-only root filesystem.
- Every webhook URL of alerts/alertmanager.yml (127.0.0.1:9095) is served
  in compose: the `webhook` service shares Alertmanager's network namespace
  and its image (docker/Dockerfile.webhook, Debian's python3) listens there.
- The receiver itself, docker/webhook_receiver.py, run here against a real
  Alertmanager with alerts/alertmanager.yml (only the port and the grouping
  delays changed): a critical alert posted to Alertmanager shows up as a
  log line of the receiver; a body that is not a notification gets 400 and
  a log line naming the problem.

No Docker engine is needed (none is available on the build machines).
About 5 seconds.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import integrations_support as sup  # noqa: E402

SOURCE_DIR = os.environ.get("VMTIME_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(SOURCE_DIR, "docker")
COMPOSE = os.path.join(DOCKER, "compose.yml")
AM_CONFIG = os.path.join(SOURCE_DIR, "alerts", "alertmanager.yml")
RECEIVER = os.path.join(DOCKER, "webhook_receiver.py")


@pytest.fixture(scope="module")
def compose():
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.fail("docker-compose not installed (Debian package docker-compose; scripts/setup --test)")
    r = subprocess.run([exe, "-f", COMPOSE, "config"], capture_output=True, text=True,
                       timeout=60, cwd=DOCKER)
    assert r.returncode == 0, f"docker-compose config failed:\n{r.stderr}"
    return yaml.safe_load(r.stdout)


def test_every_service_is_hardened(compose):
    services = compose["services"]
    assert {"exporter", "prometheus", "alertmanager", "grafana", "webhook"} <= set(services)
    for name, svc in services.items():
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
        assert svc.get("cap_drop") == ["ALL"], name
        assert not svc.get("cap_add"), name
        assert svc.get("read_only") is True, name
        assert not svc.get("privileged"), name


def test_webhook_urls_are_served_in_compose(compose):
    urls = [w["url"] for rcv in yaml.safe_load(open(AM_CONFIG))["receivers"]
            for w in rcv.get("webhook_configs", [])]
    assert urls
    webhook = compose["services"]["webhook"]
    # Alertmanager's 127.0.0.1 is the webhook's 127.0.0.1.
    assert webhook["network_mode"] == "service:alertmanager"
    dockerfile = open(os.path.join(webhook["build"]["context"],
                                   webhook["build"]["dockerfile"])).read()
    assert re.search(r"^FROM debian:\$\{DEBIAN_RELEASE\}-slim$", dockerfile, re.M), dockerfile
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))
    listen = cmd[cmd.index("--listen") + 1]
    for url in urls:
        assert url.startswith(f"http://{listen}/"), (url, listen)


def _post(url, body, timeout=5):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_real_alertmanager_notifies_the_receiver():
    workdir = tempfile.mkdtemp(prefix="vmtime-compose-")
    try:
        with sup.processes() as procs:
            port = sup.free_port()
            receiver = sup.Proc("webhook", [sys.executable, RECEIVER, "--listen",
                                            f"127.0.0.1:{port}"], workdir)
            procs.append(receiver)
            receiver.wait_log(r"listening on", 10)
            base = f"http://127.0.0.1:{port}"

            # Bad input: named, refused, the receiver keeps serving.
            code, body = _post(base + "/vmtime/critical", b"{not json")
            assert code == 400 and "bad notification" in body
            code, body = _post(base + "/vmtime/critical", b'{"alerts": 3}')
            assert code == 400 and "'alerts'" in body
            receiver.wait_log(r"webhook /vmtime/critical: bad notification: no 'alerts' list", 5)

            cfg = yaml.safe_load(open(AM_CONFIG))
            cfg["route"]["group_wait"] = "1s"
            for route in cfg["route"].get("routes", []):
                route["group_wait"] = "1s"
            for rcv in cfg["receivers"]:
                for w in rcv.get("webhook_configs", []):
                    assert "//127.0.0.1:9095/" in w["url"], w["url"]
                    w["url"] = w["url"].replace("127.0.0.1:9095", f"127.0.0.1:{port}")
            _, am_base = sup.start_alertmanager(procs, workdir, cfg)
            alert = [{"labels": {"alertname": "VMClockOffsetCritical", "severity": "critical",
                                 "instance": "hv1:9958", "domain": "g1", "uuid": "u1"}}]
            code, body = _post(am_base + "/api/v2/alerts", json.dumps(alert).encode())
            assert code == 200, body
            receiver.wait_log(r"webhook /vmtime/critical: status=firing "
                              r"alertname=VMClockOffsetCritical severity=critical "
                              r"instance=hv1:9958 domain=g1", 30)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
