#!/usr/bin/python3
"""The container image, built and run for real (issue 19 item 7).

No Docker engine here: the daemonless path is Debian's podman with runc
(crun fails on this machine's hybrid cgroups) and explicit ulimits (podman's
defaults exceed what the sandbox allows). scripts/setup --test (through
scripts/container-base) made the base images debian:bookworm and
debian:bookworm-slim from debootstrap and built the Dockerfile's dependency
stages once, so this build runs with --network none: the apt layers are
cache hits and the compile of the two binaries is the only heavy step (a
cache hit too when the sources did not change since the last run).

The image then runs unprivileged against a private lab libvirtd (tests/lab:
one QEMU guest with the guest agent) whose socket directory is mounted at
/run/libvirt, with the socket's group added as compose does with
LIBVIRT_GID. libvirtd looks the connecting uid up in the *host's* user
database and refuses a uid it does not know ("Failed to find user record
for uid '9958'"), so the container runs as a uid the host has: nobody
(65534) here, so that the test never adds a user to the machine
(VMTIME_CONTAINER_UID overrides it); the image's own user (vmtime, uid
9958) is checked in its configuration. docs/integrations.md says how to run
it on a hypervisor. /metrics on a loopback port shows the guest's health score and
the build revision passed as the VMTIME_REVISION build argument; the image's
own HEALTHCHECK command succeeds.

The image is built as a Debug build with -Werror (build arguments
VMTIME_BUILD_TYPE=Debug, VMTIME_WERROR=ON; users build Release, the
default): this one compile proves the Dockerfile's build stage and the Debug
build type (docs/packaging.md, "Build types"), which tests/e2e/test_build_types.py
then does not compile again. The build stage's compile_commands.json must
show the Debug flags with -Werror, and the image's two programs run
(--version, --config.check, the Zabbix check's --help). The Release
compile with -Werror is test_package's.

Skips, saying so, only when podman cannot run containers on this machine.
Fails (does not skip) when the base images are missing: run
`scripts/setup --test`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

import integrations_support as sup

SRC = sup.SRC
sys.path.insert(0, os.path.join(SRC, "tests", "lab"))
import vmlab  # noqa: E402

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = "localhost/vmtime-exporter:e2e"
BUILD_STAGE_IMAGE = "localhost/vmtime-exporter:e2e-build-stage"
# The image is a Debug build with -Werror (see the module docstring).
BUILD_ARGS = ["--build-arg", "VMTIME_BUILD_TYPE=Debug", "--build-arg", "VMTIME_WERROR=ON"]
GUEST = "ctr"


def podman(*args, timeout=120, check=True):
    r = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def podman_unusable():
    """Why podman cannot run containers here, or None."""
    for exe in ("podman", "runc"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (scripts/setup --test installs it)"
    r = subprocess.run(PODMAN + ["info"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"`podman info` fails: {r.stderr.strip()[-500:]}"
    return None


def revision():
    r = subprocess.run(["git", "-C", SRC, "rev-parse", "--short=12", "HEAD"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"the test needs the git revision of {SRC}: {r.stderr}"
    return r.stdout.strip()


@pytest.fixture(scope="module")
def image():
    why = podman_unusable()
    if why:
        print(f"SKIPPED: podman cannot run here: {why}")
        pytest.skip(f"podman cannot run here: {why}")
    check = subprocess.run(["bash", os.path.join(SRC, "scripts", "container-base"), "--check"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, (
        "debian:bookworm, debian:bookworm-slim or the dependency stages are missing: "
        "run `scripts/setup --test` (it builds them with network; this test has none)")
    rev = revision()

    def build(tag, *extra):
        t0 = time.monotonic()
        r = subprocess.run(
            PODMAN + ["build", "--pull=never", "--network", "none"] + LIMITS + BUILD_ARGS +
            ["--build-arg", f"VMTIME_REVISION={rev}", *extra, "-t", tag,
             "-f", "docker/Dockerfile", "."],
            cwd=SRC, capture_output=True, text=True, timeout=1500)
        assert r.returncode == 0, f"image build failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        return time.monotonic() - t0, len(re.findall(r"^--> Using cache", r.stdout, re.M))

    build_s, cached = build(IMAGE)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    print(f"image built in {build_s:.1f} s ({cached} cached steps), {size / 1e6:.1f} MB")
    assert cached >= 2, "the dependency stages (apt layers) were not cache hits"
    # The build stage alone, tagged to look into it: every step is a cache hit.
    stage_s, _ = build(BUILD_STAGE_IMAGE, "--target", "build")
    print(f"build stage tagged in {stage_s:.1f} s")
    return {"revision": rev, "size": size}


def test_image_is_a_debug_build_with_werror_whose_programs_run(image):
    """What tests/e2e/test_build_types.py checked with its own Debug
    compile: the flags (-g, no optimisation, assertions on, -Werror) and that
    both programs run."""
    commands = json.loads(podman("run", "--rm", "--network", "none", *LIMITS, "--entrypoint",
                                 "cat", BUILD_STAGE_IMAGE, "/build/compile_commands.json").stdout)
    main_cc = [c["command"] for c in commands if c["file"].endswith("exporter/main.cc")]
    assert main_cc, "exporter/main.cc is not in the build stage's compile_commands.json"
    assert "-Werror" in main_cc[0] and " -g" in main_cc[0], main_cc[0]
    assert not re.search(r" -O[1-3s]", main_cc[0]) and "NDEBUG" not in main_cc[0], main_cc[0]
    version = podman("run", "--rm", "--network", "none", *LIMITS, IMAGE, "--version").stdout
    assert "0.1.0" in version and image["revision"] in version, version
    podman("run", "--rm", "--network", "none", *LIMITS, IMAGE, "--config.check")
    r = podman("run", "--rm", "--network", "none", *LIMITS, "--entrypoint",
               "/usr/lib/zabbix/externalscripts/vmtime_zabbix_check", IMAGE, "--help",
               check=False)
    assert "discovery" in r.stdout + r.stderr, r


@pytest.fixture(scope="module")
def lab():
    the_lab = vmlab.Lab(guests=[vmlab.GuestSpec(GUEST)], boot_timeout=240)
    try:
        yield the_lab
    finally:
        the_lab.close()


def test_image_runs_unprivileged_and_scores_a_lab_guest(image, lab):
    sock_dir = os.path.dirname(lab.uri.split("socket=", 1)[1])
    sock_gid = os.stat(os.path.join(sock_dir, "libvirt-sock")).st_gid
    port = sup.free_port()
    name = f"vmtime-e2e-{uuid.uuid4().hex[:8]}"
    # The image's user is uid 9958.
    user = podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    assert user == "vmtime:vmtime", user
    run_uid = os.environ.get("VMTIME_CONTAINER_UID", "65534")
    run = podman(
        "run", "-d", "--rm", "--name", name, "--network", "host", *LIMITS,
        "--user", f"{run_uid}:{run_uid}",
        "--group-add", str(sock_gid), "-v", f"{sock_dir}:/run/libvirt",
        IMAGE, f"--web.listen-address=127.0.0.1:{port}",
        "--libvirt.uri=qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
        "--no-collector.chrony", timeout=120)
    assert run.stdout.strip()
    try:
        t0 = time.monotonic()

        def scored():
            state = podman("inspect", "--format", "{{.State.Running}}", name, check=False)
            if state.stdout.strip() != "true":
                logs = podman("logs", name, check=False)
                raise AssertionError(f"container stopped:\n{logs.stdout}\n{logs.stderr}")
            _, body = sup.http_get(f"http://127.0.0.1:{port}/metrics")
            m = re.search(r'^vmtime_vm_health_score\{[^}]*domain="%s"[^}]*\} (\S+)$' % GUEST,
                          body, re.M)
            # Scored after the first agent attempt finished (agent_up is
            # absent before it): the first publish, right after the first
            # list, scores the guest no_data before its first sample.
            up = re.search(r'^vmtime_vm_agent_up\{[^}]*domain="%s"[^}]*\} ' % GUEST, body, re.M)
            return (body, float(m.group(1))) if m and up else None

        body, score = sup.wait_until(scored, 120,
                                     f"a health score of guest {GUEST} after an agent attempt")
        print(f"guest {GUEST} scored {score} {time.monotonic() - t0:.1f} s after the start")
        assert 0 <= score <= 100
        assert re.search(r'^vmtime_vm_agent_up\{[^}]*domain="%s"[^}]*\} 1$' % GUEST, body, re.M)
        info = re.search(r"^vmtime_exporter_build_info\{([^}]*)\}", body, re.M)
        assert info, "no vmtime_exporter_build_info"
        assert f'revision="{image["revision"]}"' in info.group(1), info.group(0)

        # The exporter runs unprivileged, as the uid it was given.
        status = podman("exec", name, "cat", "/proc/1/status", "/proc/1/cmdline").stdout
        uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
        assert uids and uids.groups() == (run_uid, run_uid), status
        assert "/usr/bin/vmtime_exporter" in status, status

        # The Dockerfile's HEALTHCHECK command, pointed at the test's port,
        # run in the container. (podman's default OCI image format drops
        # HEALTHCHECK, and layers cached in one format are not reused in the
        # other, so it is read from the Dockerfile rather than the image.)
        text = re.sub(r"\\\n", " ", open(os.path.join(SRC, "docker", "Dockerfile")).read())
        hc = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
        assert hc, "no HEALTHCHECK CMD [...] in docker/Dockerfile"
        test = json.loads(hc.group(1))
        assert any("/healthz" in a for a in test), test
        argv = [a.replace("9958", str(port)) for a in test]
        assert podman("exec", name, *argv, check=False).returncode == 0, argv
        bad = [a.replace("/healthz", "/no-such-path") for a in argv]
        assert podman("exec", name, *bad, check=False).returncode != 0, \
            "the healthcheck does not fail on a non-200 answer"
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)
