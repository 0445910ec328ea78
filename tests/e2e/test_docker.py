#!/usr/bin/python3
"""Checks docker/ without a Docker engine (there is none on the build
machines: images are never built or run here).

- `docker-compose config` validates and resolves docker/compose.yml; every
  bind-mounted repository path exists.
- The Dockerfile is multi-stage on debian:bookworm, the runtime stage installs
  no -dev package, runs as a non-root user and has a HEALTHCHECK on /healthz.
  (Stages built FROM an earlier stage inherit its instructions here.) The
  image is built and run for real in test_container.py.
- The runtime stage installs the package of every shared library the built
  exporter actually links (ldd + dpkg -S on this Debian 12 machine).
- docker/prometheus.yml passes `promtool check config` (with its container
  rule paths mapped onto the repository's alerts/), and the Grafana
  provisioning files are well-formed.
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile

import pytest
import yaml

SRC = os.environ.get("VMTIME_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
DOCKER = os.path.join(SRC, "docker")
COMPOSE = os.path.join(DOCKER, "compose.yml")
DOCKERFILE = os.path.join(DOCKER, "Dockerfile")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def compose():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose not installed (Debian package docker-compose; scripts/setup)")
    env = dict(os.environ)
    env.pop("LIBVIRT_GID", None)
    env.pop("GRAFANA_ADMIN_PASSWORD", None)
    r = run([exe, "-f", COMPOSE, "config"], env=env, cwd=SRC)
    assert r.returncode == 0, f"docker-compose config failed:\n{r.stderr}"
    return yaml.safe_load(r.stdout)


def stages():
    """Parses the Dockerfile into stages: list of (base image, [instructions]).
    A stage FROM an earlier stage gets that stage's base image and its
    instructions first."""
    text = open(DOCKERFILE).read()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    out = []
    named = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
            base, name = m.group(1), m.group(2)
            if base in named:
                base, inherited = named[base][0], list(named[base][1])
            else:
                inherited = []
            out.append((base, inherited))
            if name:
                named[name] = out[-1]
        elif out:
            out[-1][1].append((word.upper(), rest.strip()))
    return out


def apt_packages(instructions):
    pkgs = []
    for word, rest in instructions:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            argv = shlex.split(cmd)
            if argv[:2] == ["apt-get", "install"]:
                pkgs += [a for a in argv[2:] if not a.startswith("-")]
    return pkgs


def test_compose_services_and_mounts(compose):
    services = compose["services"]
    assert set(services) >= {"exporter", "prometheus", "alertmanager", "grafana"}
    exporter = services["exporter"]
    assert exporter["build"]["dockerfile"] == "docker/Dockerfile"
    assert any("/run/libvirt/libvirt-sock" in str(v) for v in exporter["volumes"])
    # Every bind mount from the repository points at something that exists.
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith(SRC):
                assert os.path.exists(source), f"service {name}: mount source {source} missing"
    # Prometheus gets the rules, Grafana the provisioning and dashboards.
    prom_mounts = " ".join(map(str, services["prometheus"]["volumes"]))
    assert os.path.join(SRC, "alerts") in prom_mounts
    graf_mounts = " ".join(map(str, services["grafana"]["volumes"]))
    assert "/etc/grafana/provisioning/dashboards" in graf_mounts
    assert "/etc/grafana/provisioning/datasources" in graf_mounts


def test_dockerfile_stages_user_healthcheck():
    st = stages()
    assert len(st) >= 2, "expected a multi-stage Dockerfile"
    for from_line, _ in st:
        assert "debian:${DEBIAN_RELEASE}" in from_line or "debian:bookworm" in from_line, from_line
    assert re.search(r"ARG DEBIAN_RELEASE=bookworm", open(DOCKERFILE).read())
    runtime_from, runtime = st[-1]
    build_pkgs = apt_packages(st[0][1])
    assert "libvirt-dev" in build_pkgs and "prometheus-cpp-dev" in build_pkgs
    runtime_pkgs = apt_packages(runtime)
    assert runtime_pkgs, "runtime stage installs nothing?"
    assert not [p for p in runtime_pkgs if p.endswith("-dev")], runtime_pkgs
    assert "build-essential" not in runtime_pkgs and "cmake" not in runtime_pkgs
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "runtime stage has no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users
    health = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert health and "/healthz" in health[0], health
    assert any(word == "COPY" and "--from=build" in rest for word, rest in runtime)


def test_runtime_stage_has_every_linked_library():
    exe = os.environ.get("VMTIME_EXPORTER")
    if not exe or not os.path.exists(exe):
        pytest.fail("VMTIME_EXPORTER (the built exporter) is needed to compare its libraries")
    runtime_pkgs = set(apt_packages(stages()[-1][1]))
    r = run(["ldd", exe])
    assert r.returncode == 0, r.stderr
    paths = dict(re.findall(r"^\s*(\S+)\s+=>\s+(/\S+)", r.stdout, re.M))
    r = run(["objdump", "-p", exe])
    assert r.returncode == 0, r.stderr
    needed = re.findall(r"NEEDED\s+(\S+)", r.stdout)
    assert needed
    missing = {}
    for soname in needed:
        path = paths.get(soname)
        assert path, f"ldd does not resolve {soname}"
        d = run(["dpkg", "-S", os.path.realpath(path)])
        if d.returncode != 0:
            d = run(["dpkg", "-S", path])
        assert d.returncode == 0, f"{path} ({soname}) belongs to no Debian package"
        pkg = d.stdout.split(":")[0].strip()
        # In every debian:bookworm-slim image (toolchain runtime).
        if pkg in ("libc6", "libstdc++6", "libgcc-s1") or pkg in runtime_pkgs:
            continue
        missing[soname] = pkg
    assert not missing, f"runtime stage lacks the packages of directly linked libraries: {missing}"


def test_prometheus_config_with_rules():
    with tempfile.TemporaryDirectory() as tmp:
        cfg = yaml.safe_load(open(os.path.join(DOCKER, "prometheus.yml")))
        cfg["rule_files"] = [p.replace("/etc/prometheus/vmtime", os.path.join(SRC, "alerts"))
                             for p in cfg["rule_files"]]
        for p in cfg["rule_files"]:
            assert os.path.exists(p), p
        path = os.path.join(tmp, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        r = run(["promtool", "check", "config", path])
        assert r.returncode == 0, r.stdout + r.stderr
        jobs = [j["job_name"] for j in cfg["scrape_configs"]]
        assert "vmtime" in jobs  # VMTimeExporterDown uses up{job="vmtime"}


def test_grafana_provisioning_files():
    prov = os.path.join(SRC, "dashboards", "grafana", "provisioning")
    ds = yaml.safe_load(open(os.path.join(prov, "datasources", "vmtime.yml")))
    assert ds["apiVersion"] == 1
    assert ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"  # the compose service
    dash = yaml.safe_load(open(os.path.join(prov, "dashboards", "vmtime.yml")))
    assert dash["apiVersion"] == 1
    path = dash["providers"][0]["options"]["path"]
    compose_text = open(COMPOSE).read()
    assert f":{path}:" in compose_text, f"compose does not mount dashboards at {path}"
