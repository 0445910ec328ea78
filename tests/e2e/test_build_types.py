#!/usr/bin/python3
"""Every build type users make builds (docs/packaging.md, "Build types").

- RelWithDebInfo: the build the test suite runs in (scripts/build, with
  VMTIME_WERROR=ON); checked from its CMakeCache.txt.
- Release: built with -Werror by tests/e2e/test_package.py (the package is a
  Release build); not repeated here.
- Debug: configured with VMTIME_WERROR=ON in <build dir>/build-types/debug
  (the flags checked here). The two programs (vmtime_exporter,
  vmtime_zabbix_check) are compiled and run by tests/e2e/test_container.py,
  whose image is built as a Debug build with -Werror: one compile proves
  the Dockerfile's build stage and this build type. Where podman cannot run
  (test_container skips), they are compiled here instead and run
  (--version, --config.check, the zabbix check's --help). Tests and
  benchmarks are not rebuilt: they compile the same sources.
- A plain configure (no options) has -Wall -Wextra but not -Werror, so a
  newer compiler's new warning never breaks a user's build.

Time: two configures, seconds; where podman cannot run, the Debug compile
of the two programs (about 3 min on two idle cores from scratch, -O0).
"""
import json
import os
import re
import shutil
import subprocess
import time

import test_container  # podman_unusable: where the Debug build is compiled


SOURCE_DIR = os.environ.get("VMTIME_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY_DIR = os.environ.get("VMTIME_BINARY_DIR") or os.path.join(SOURCE_DIR, "build")
TYPES_DIR = os.path.join(BINARY_DIR, "build-types")
JOBS = str(os.cpu_count() or 2)


def run(argv, timeout, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{argv} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def cache(build_dir):
    values = {}
    for line in open(os.path.join(build_dir, "CMakeCache.txt")):
        m = re.match(r"^([A-Za-z_0-9]+):[A-Z]+=(.*)$", line.rstrip("\n"))
        if m:
            values[m.group(1)] = m.group(2)
    return values


def configure(build_dir, *options):
    os.makedirs(build_dir, exist_ok=True)
    run(["cmake", "-S", SOURCE_DIR, "-B", build_dir, "-DVMTIME_BUILD_TESTS=OFF",
         "-DVMTIME_BUILD_BENCH=OFF", *options], timeout=300)
    return json.load(open(os.path.join(build_dir, "compile_commands.json")))


def test_suite_build_is_relwithdebinfo_with_werror():
    values = cache(BINARY_DIR)
    assert values.get("CMAKE_BUILD_TYPE") == "RelWithDebInfo", values.get("CMAKE_BUILD_TYPE")
    assert values.get("VMTIME_WERROR") == "ON", "the suite's build is not scripts/build's"


CIVETWEB_SOURCE_ROOT = "/usr/local/src/vmtime-exporter/"


def test_plain_configure_has_no_werror():
    build_dir = os.path.join(TYPES_DIR, "plain")
    shutil.rmtree(build_dir, ignore_errors=True)
    try:
        commands = configure(build_dir)
        assert commands
        for c in commands:
            assert "-Werror" not in c["command"].replace("-Werror=format-security", ""), c["command"]
            if c["file"].startswith(CIVETWEB_SOURCE_ROOT):
                # Debian's civetweb source, compiled by the project with its
                # warnings off (-w, cmake/VmtimeCivetweb.cmake): not our code.
                assert " -w " in c["command"], c["command"]
                continue
            assert "-Wall" in c["command"] and "-Wextra" in c["command"], c["command"]
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def test_debug_build_with_werror():
    build_dir = os.path.join(TYPES_DIR, "debug")
    commands = configure(build_dir, "-DCMAKE_BUILD_TYPE=Debug", "-DVMTIME_WERROR=ON")
    exporter_cc = [c["command"] for c in commands if c["file"].endswith("exporter/main.cc")]
    assert exporter_cc and "-Werror" in exporter_cc[0] and " -g" in exporter_cc[0], exporter_cc
    assert not re.search(r" -O[1-3s]", exporter_cc[0]), exporter_cc[0]
    why_not_podman = test_container.podman_unusable()
    if why_not_podman is None:
        print("Debug compile and run: in tests/e2e/test_container.py (its image is a Debug "
              "build with -Werror)")
        return
    print(f"podman cannot run here ({why_not_podman}): the Debug build is compiled here")
    t0 = time.monotonic()
    run(["cmake", "--build", build_dir, "-j", JOBS, "--target", "vmtime_exporter",
         "vmtime_zabbix_check"], timeout=1700)
    print(f"Debug build of vmtime_exporter and vmtime_zabbix_check: {time.monotonic() - t0:.0f} s")
    exporter = os.path.join(build_dir, "exporter", "vmtime_exporter")
    assert "0.1.0" in run([exporter, "--version"], timeout=30).stdout
    run([exporter, "--config.check"], timeout=30)
    r = subprocess.run([os.path.join(build_dir, "dashboards", "zabbix", "vmtime_zabbix_check"),
                        "--help"], capture_output=True, text=True, timeout=30)
    assert "discovery" in r.stdout + r.stderr, r
