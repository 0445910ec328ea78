#!/usr/bin/python3
"""A remote libvirt URI is refused at configuration validation, unless the
user opts in (issue 19 item 5; docs/libvirt.md "Remote URIs").

The real exporter, no lab: a refused configuration exits 2 before listening
with an error naming the URI, the reason and the opt-in (from the config
file, from --libvirt.uri, and under --config.check). With the opt-in it
starts and serves /metrics; the libvirt connection itself fails (a TCP port
on loopback where nothing listens: only loopback traffic in tests), which is
not the point here. That the UTC offset and the host reference are left out
for such VMs is checked on the store and the exposition in
tests/unit/store_test.cc (Store.RemoteLibvirtUriHasNoUtcOffsetAndNoHostReference).
A few seconds.
"""

import os
import subprocess
import tempfile

import integrations_support as sup

# Remote by transport and host part; loopback, and nothing listens on port 1.
REMOTE = "qemu+tcp://127.0.0.1:1/system"


def run_exporter(args):
    return subprocess.run([sup.exporter_binary(), *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def assert_refused(r, uri, reason):
    assert r.returncode == 2, f"exit {r.returncode}, expected 2\n{r.stdout}\n{r.stderr}"
    err = r.stderr
    assert f"invalid configuration: libvirt.uri '{uri}' is not local ({reason})" in err, err
    assert "measured against this machine's clock" in err, err
    assert "--libvirt.allow-remote" in err and "libvirt.allow_remote: true" in err, err
    assert "listening" not in err + r.stdout


def test_remote_uri_in_config_file_is_refused():
    uri = "qemu+ssh://user@hv1.example.org/system?keyfile=/root/.ssh/id_ed25519"
    with tempfile.TemporaryDirectory(prefix="vmtime-remote-") as d:
        conf = sup.write_yaml(os.path.join(d, "c.yml"), {"libvirt": {"uri": uri}})
        assert_refused(run_exporter([f"--config.file={conf}",
                                     "--web.listen-address=127.0.0.1:0"]), uri, "transport 'ssh'")
        assert_refused(run_exporter([f"--config.file={conf}", "--config.check"]), uri,
                       "transport 'ssh'")


def test_remote_uri_flag_is_refused():
    assert_refused(run_exporter(["--libvirt.uri", "qemu://hv1/system", "--config.check"]),
                   "qemu://hv1/system", "host part 'hv1'")
    assert_refused(run_exporter(["--libvirt.uri", REMOTE, "--web.listen-address=127.0.0.1:0"]),
                   REMOTE, "transport 'tcp'")


def test_local_forms_pass_validation():
    for uri in ("qemu:///system", "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
                "test:///default"):
        r = run_exporter(["--libvirt.uri", uri, "--config.check"])
        assert r.returncode == 0, f"{uri}: {r.stderr}"


def test_opt_in_starts_and_serves_metrics():
    r = run_exporter(["--libvirt.uri", REMOTE, "--libvirt.allow-remote", "--config.check"])
    assert r.returncode == 0, r.stderr
    with tempfile.TemporaryDirectory(prefix="vmtime-remote-") as d, sup.processes() as procs:
        # By the config key ...
        p, base = sup.start_exporter(procs, d, libvirt_uri=REMOTE,
                                     config_extra={"libvirt": {"allow_remote": True}})
        status, body = sup.http_get(base + "/metrics")
        assert status == 200
        assert "vmtime_exporter_build_info" in body
        assert "vmtime_vm_clock_utc_offset_seconds{" not in body
        assert "is remote (transport 'tcp'), accepted by libvirt.allow_remote" in p.log(), p.tail()
        # ... and by the flag.
        p2, base2 = sup.start_exporter(procs, d, name="exporter-flag", libvirt_uri=REMOTE,
                                       extra_args=["--libvirt.allow-remote"])
        assert sup.http_get(base2 + "/metrics")[0] == 200
        assert p.alive() and p2.alive()
