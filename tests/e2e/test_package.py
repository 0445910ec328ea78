#!/usr/bin/python3
"""The Debian package, built, checked, installed, run and purged for real
(docs/packaging.md).

1. `scripts/package` builds it in a Release configuration with
   VMTIME_WERROR=ON (so this is also the Release -Werror build check) into
   <build dir>/package; a second run reuses that build tree.
2. lintian's findings (errors, warnings, info) are each listed with a reason
   in docs/packaging.md ("lintian"); a new finding fails the test. lintian
   runs in the background while steps 3-6 run; its check is the last test.
3. `dpkg -i` installs it, with a temporary policy-rc.d so that no service is
   started even where systemd runs (the unit is not started here: systemd is
   not PID 1 on the build machines). The package must not be installed
   before: an installed vmtime-exporter belongs to the machine's owner and
   the test leaves it alone (skip, saying so).
4. The installed files, conffiles, the system user (and its libvirt
   membership when that group exists), the commented default
   configuration (uncommented it is exactly --config.show-default), the man
   page (every --help flag), and `systemd-analyze verify` of the unit.
5. The installed binary, started with the unit's own ExecStart and
   /etc/default/vmtime-exporter flags, as the user vmtime-exporter (setpriv,
   no capabilities, no_new_privs), serves the score of a lab guest through
   a private libvirtd whose read-write socket is open to the user's group
   only; it runs under strace, and every system call and socket family it
   used must be allowed by the unit's SystemCallFilter (expanded with
   systemd-analyze) and RestrictAddressFamilies.
6. `dpkg --purge` leaves nothing behind: no file or directory that did not
   exist before the install, no user or group, no systemd enablement state.
   The purge also runs in the fixture's finally, on any failure.

Needs root, debhelper and lintian (scripts/setup --test), the lab
(libvirtd, QEMU) and strace. Time: the Release build without -g (about
5 min of CPU from scratch, under 3 min on two idle cores; after a commit
the files that include the build info recompile), lintian about 30 s, lab
boot, the run under strace and the purge about 75 s (docs/packaging.md,
"Figures").
"""
import contextlib
import gzip
import os
import pwd
import grp
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import integrations_support as sup  # noqa: E402

SOURCE_DIR = os.environ.get("VMTIME_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY_DIR = os.environ.get("VMTIME_BINARY_DIR") or os.path.join(SOURCE_DIR, "build")
PACKAGE = "vmtime-exporter"
USER = "vmtime-exporter"
# debhelper 13.11 (Debian 12) installs units under /lib; later ones under /usr/lib.
UNIT_CANDIDATES = ("/lib/systemd/system/vmtime-exporter.service",
                   "/usr/lib/systemd/system/vmtime-exporter.service")
POLICY_RC_D = "/usr/sbin/policy-rc.d"
PACKAGING_DOC = os.path.join(SOURCE_DIR, "docs", "packaging.md")
# Where systemd and deb-systemd-helper keep enablement state.
SYSTEMD_STATE_DIRS = ("/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled",
                      "/var/lib/systemd/deb-systemd-helper-masked")


def run(argv, timeout=120, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}:\nstdout:\n{r.stdout[-3000:]}\n"
                             f"stderr:\n{r.stderr[-3000:]}")
    return r


def dpkg(argv, timeout=300):
    """dpkg, waiting (bounded) while another dpkg/apt holds the lock."""
    deadline = time.monotonic() + 120
    while True:
        r = run(["dpkg"] + argv, timeout=timeout, check=False,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > deadline:
            assert r.returncode == 0, f"dpkg {argv} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
            return r
        time.sleep(2)


def package_state():
    r = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", PACKAGE], check=False)
    return r.stdout.strip() if r.returncode == 0 else "not-installed"


def user_exists(name=USER):
    with contextlib.suppress(KeyError):
        pwd.getpwnam(name)
        return True
    return False


def group_exists(name):
    with contextlib.suppress(KeyError):
        grp.getgrnam(name)
        return True
    return False


def systemd_state():
    found = []
    for d in SYSTEMD_STATE_DIRS:
        for root, dirs, files in os.walk(d):
            found += [os.path.join(root, n) for n in dirs + files if "vmtime" in n]
    return found


@pytest.fixture(scope="module")
def deb():
    if os.geteuid() != 0:
        pytest.fail("needs root (dpkg -i, setpriv, the lab)")
    for tool in ("dpkg-buildpackage", "dh", "lintian", "strace", "setpriv", "systemd-analyze"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: run scripts/setup --test")
    # The build tree is kept there between runs (VMTIME_PACKAGE_DIR overrides).
    out = os.environ.get("VMTIME_PACKAGE_DIR") or os.path.join(BINARY_DIR, "package")
    t0 = time.monotonic()
    r = subprocess.run(["bash", os.path.join(SOURCE_DIR, "scripts", "package")],
                       capture_output=True, text=True, timeout=1500,
                       env=dict(os.environ, VMTIME_WERROR="ON", VMTIME_PACKAGE_DIR=out))
    assert r.returncode == 0, f"scripts/package failed:\n{r.stderr[-5000:]}"
    path = r.stdout.strip().splitlines()[-1]
    print(f"package: {path}, {os.path.getsize(path) / 1024:.0f} KiB, "
          f"built in {time.monotonic() - t0:.0f} s")
    # Release with -Werror: the flags of the build that produced it.
    log = open(os.path.join(out, "build.log"), errors="replace").read()
    assert "-DCMAKE_BUILD_TYPE=Release" in log
    assert re.search(r"c\+\+ .* -O3 -DNDEBUG .*-Werror", log), "not a Release -Werror build"
    # No debug information: the binaries are stripped and there is no
    # -dbgsym package, so -g would only cost compile time (debian/rules).
    with_g = [ln for ln in log.splitlines()
              if re.search(r"/usr/bin/(c\+\+|cc) .* -c ", ln) and re.search(r" -g(\s|$)", ln)]
    assert not with_g, f"compiled with -g: {with_g[0][:500]}"
    # lintian reads only the .deb: it runs while the package is installed
    # and run, and the last test collects its findings.
    LINTIAN["proc"] = subprocess.Popen(
        ["lintian", "--display-info", "--no-tag-display-limit", path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return path


# The background lintian run started by the deb fixture.
LINTIAN = {}


def lintian_findings(path):
    proc = LINTIAN.pop("proc", None) or subprocess.Popen(
        ["lintian", "--display-info", "--no-tag-display-limit", path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 1, 2), stderr
    found = set()
    for line in stdout.splitlines():
        m = re.match(r"^([EWI]): vmtime-exporter(?: \w+)?: (\S+)(.*)$", line)
        if m:
            found.add((m.group(1), m.group(2), m.group(3).strip()))
    return found, stdout


def accepted_lintian_tags():
    """Tags listed in docs/packaging.md's lintian table: | `tag` | severity | reason |."""
    text = open(PACKAGING_DOC).read()
    section = text.split("## lintian", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in
            re.finditer(r"^\| `([a-z0-9.+-]+)` \| ([EWI]) \| .+\|$", section, re.M)}


@pytest.fixture(scope="module")
def installed(deb):
    state = package_state()
    if state.startswith("ii") or state.startswith("rc"):
        pytest.skip(f"{PACKAGE} is already on this machine (dpkg state {state!r}); "
                    "the test never touches a package the machine's owner installed")
    assert not user_exists(), (f"user {USER} exists without the package: a leftover "
                               "(remove it with deluser --system vmtime-exporter)")
    contents = run(["dpkg-deb", "--contents", deb]).stdout
    paths = []
    for line in contents.splitlines():
        name = line.split(None, 5)[5].split(" -> ")[0]
        paths.append(os.path.normpath(name.lstrip(".")) or "/")
    new_paths = [p for p in paths if not os.path.lexists(p)]
    systemd_before = systemd_state()
    own_policy = False
    if not os.path.exists(POLICY_RC_D):
        with open(POLICY_RC_D, "w") as f:
            f.write("#!/bin/sh\n# vmtime-exporter test_package: no service starts\nexit 101\n")
        os.chmod(POLICY_RC_D, 0o755)
        own_policy = True
    try:
        dpkg(["-i", deb])
        yield {"paths": paths, "new_paths": new_paths, "systemd_before": systemd_before}
    finally:
        try:
            if package_state() != "not-installed":
                dpkg(["--purge", PACKAGE])
        finally:
            if own_policy:
                os.unlink(POLICY_RC_D)


def test_files_user_and_conffiles(installed):
    listed = set(run(["dpkg", "-L", PACKAGE]).stdout.split())
    for path in ("/usr/bin/vmtime-exporter", "/usr/bin/vmtime_zabbix_check",
                 "/usr/lib/zabbix/externalscripts/vmtime_zabbix_check",
                 "/etc/vmtime-exporter/vmtime-exporter.yml", "/etc/default/vmtime-exporter",
                 "/usr/share/man/man1/vmtime-exporter.1.gz",
                 "/usr/share/man/man1/vmtime_zabbix_check.1.gz",
                 "/usr/share/vmtime-exporter/alerts/vmtime.rules.yml",
                 "/usr/share/vmtime-exporter/alerts/vmtime.recording.yml",
                 "/usr/share/vmtime-exporter/alerts/alertmanager.yml",
                 "/usr/share/vmtime-exporter/grafana/vmtime-fleet.json",
                 "/usr/share/vmtime-exporter/grafana/vmtime-vm.json",
                 "/usr/share/vmtime-exporter/zabbix/template_vmtime_exporter.yaml",
                 "/usr/share/vmtime-exporter/zabbix/userparameter_vmtime.conf",
                 "/usr/share/vmtime-exporter/polkit/50-vmtime-exporter.rules",
                 "/usr/share/doc/vmtime-exporter/security.md.gz"):
        assert path in listed, f"{path} not in the package"
        assert os.path.lexists(path), path
    assert unit_path() in listed
    assert os.path.realpath("/usr/lib/zabbix/externalscripts/vmtime_zabbix_check") == \
        "/usr/bin/vmtime_zabbix_check"
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout
    assert "/etc/vmtime-exporter/vmtime-exporter.yml" in conffiles
    assert "/etc/default/vmtime-exporter" in conffiles

    user = pwd.getpwnam(USER)
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin", user
    assert grp.getgrgid(user.pw_gid).gr_name == USER
    assert not os.path.exists(user.pw_dir), f"home {user.pw_dir} was created"
    if group_exists("libvirt"):
        assert USER in grp.getgrnam("libvirt").gr_mem, "user not added to group libvirt"

    # The binary the package ships is a stripped Release build with the revision.
    version = run(["/usr/bin/vmtime-exporter", "--version"]).stdout
    assert "0.1.0" in version, version
    if os.path.isdir(os.path.join(SOURCE_DIR, ".git")) or os.path.isfile(
            os.path.join(SOURCE_DIR, ".git")):
        rev = run(["git", "-C", SOURCE_DIR, "rev-parse", "--short=12", "HEAD"]).stdout.strip()
        assert rev in version, (rev, version)


def test_default_config_is_the_builtin_one_commented(installed):
    path = "/etc/vmtime-exporter/vmtime-exporter.yml"
    run(["/usr/bin/vmtime-exporter", "--config.file", path, "--config.check"])
    text = open(path).read()
    head = open(os.path.join(SOURCE_DIR, "debian", "vmtime-exporter.yml.head")).read()
    assert text.startswith(head), "the header of debian/vmtime-exporter.yml.head is missing"
    body = text[len(head):].splitlines()
    assert body and all(ln.startswith("#") for ln in body), "a line is not commented"
    uncommented = "\n".join(re.sub(r"^# ?", "", ln) for ln in body)
    shown = run(["/usr/bin/vmtime-exporter", "--config.show-default"]).stdout
    assert yaml.safe_load(uncommented) == yaml.safe_load(shown)
    flags = run(["bash", "-c", ". /etc/default/vmtime-exporter && printf %s \"$ARGS\""]).stdout
    assert flags == "--chrony.address=127.0.0.1:323", flags


def test_man_page_documents_every_flag(installed):
    page = gzip.open("/usr/share/man/man1/vmtime-exporter.1.gz", "rt").read().replace("\\-", "-")
    help_text = run(["/usr/bin/vmtime-exporter", "--help"]).stdout
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z_.-]*)", help_text))
    assert len(flags) > 15, flags
    missing = sorted(f for f in flags if f not in page)
    assert not missing, f"flags of --help missing from the man page: {missing}"
    r = run(["man", "--warnings", "-l", "-Tutf8", "/usr/share/man/man1/vmtime-exporter.1.gz"],
            check=False, env=dict(os.environ, MANWIDTH="80"))
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def unit_path():
    listed = set(run(["dpkg", "-L", PACKAGE]).stdout.split())
    found = [u for u in UNIT_CANDIDATES if u in listed]
    assert found, f"no vmtime-exporter.service in the package ({UNIT_CANDIDATES})"
    return found[0]


def unit_settings():
    settings = {}
    for line in open(unit_path()):
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_verifies_and_is_hardened(installed):
    r = run(["systemd-analyze", "verify", unit_path()], check=False)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if "vmtime-exporter" in ln]
    assert r.returncode == 0 and not problems, f"systemd-analyze verify:\n{r.stdout}{r.stderr}"
    s = unit_settings()
    expected = {"User": ["vmtime-exporter"], "NoNewPrivileges": ["yes"],
                "ProtectSystem": ["strict"], "ProtectHome": ["yes"], "PrivateTmp": ["yes"],
                "CapabilityBoundingSet": [""], "AmbientCapabilities": [""],
                "Restart": ["on-failure"], "ExecReload": ["/bin/kill -HUP $MAINPID"]}
    for key, value in expected.items():
        assert s.get(key) == value, (key, s.get(key))
    assert "ProtectClock" not in s, "ProtectClock makes adjtimex fail with EPERM"
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert s["SystemCallFilter"][0].split()[0] == "@system-service"


def expand_syscall_filter(entries):
    """The system calls a SystemCallFilter allow list names, groups expanded
    with systemd-analyze (this machine's systemd)."""
    groups, current = {}, None
    for line in run(["systemd-analyze", "syscall-filter"]).stdout.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    allowed, todo = set(), list(entries)
    while todo:
        item = todo.pop()
        if item.startswith("@"):
            assert item in groups, f"unknown syscall group {item}"
            todo += [x for x in groups[item] if x not in allowed]
        allowed.add(item)
    return allowed


@pytest.fixture(scope="module")
def lab(installed):
    vmlab = sup.lab_module()
    base = tempfile.mkdtemp(prefix="vmtime-pkg-")
    os.chmod(base, 0o711)  # the service user must reach the socket below it
    try:
        with vmlab.Lab(workdir=os.path.join(base, "lab"), guests=[vmlab.GuestSpec("g1")],
                       boot_timeout=300) as the_lab:
            sock = the_lab.uri.split("socket=", 1)[1]
            # Read-write socket: owner root, group vmtime-exporter, mode 0770
            # (the lab's unix_sock_rw_perms): the user's group, nobody else.
            os.chown(sock, 0, grp.getgrnam(USER).gr_gid)
            assert os.stat(sock).st_mode & 0o777 == 0o770, oct(os.stat(sock).st_mode)
            d = os.path.dirname(sock)
            while d != "/":
                assert os.stat(d).st_mode & 0o001, f"{d} not traversable"
                d = os.path.dirname(d)
            yield the_lab
    finally:
        shutil.rmtree(base, ignore_errors=True)


def exec_start_argv():
    s = unit_settings()
    args = run(["bash", "-c", ". /etc/default/vmtime-exporter && printf %s \"$ARGS\""]).stdout
    argv = []
    for word in shlex.split(s["ExecStart"][0]):
        argv += shlex.split(args) if word == "$ARGS" else [word]
    return argv


def proc_uid_gid(pid):
    status = open(f"/proc/{pid}/status").read()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    caps = re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1)
    return uid, int(caps, 16)


def test_installed_binary_as_package_user_scores_lab_guest(installed, lab):
    workdir = tempfile.mkdtemp(prefix="vmtime-pkg-run-")
    trace = os.path.join(workdir, "strace.txt")
    port = sup.free_port()
    # An NTP server name too, so name resolution and the SNTP sockets run
    # under the trace (nothing answers on that port: the probe fails).
    argv = exec_start_argv() + [f"--libvirt.uri={lab.uri}",
                                f"--web.listen-address=127.0.0.1:{port}",
                                f"--ntp.server=localhost:{sup.free_port()}"]
    assert argv[0] == "/usr/bin/vmtime-exporter", argv
    setpriv = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups",
               "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
    try:
        with sup.processes() as procs:
            # The environment systemd gives the service (User=, no HOME).
            env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "LANG": "C.UTF-8", "HOME": "/nonexistent", "USER": USER, "LOGNAME": USER,
                   "SHELL": "/usr/sbin/nologin"}
            p = sup.Proc("exporter", ["strace", "-f", "-qq", "-o", trace] + setpriv + argv,
                         workdir, env=env)
            procs.append(p)
            base = f"http://127.0.0.1:{port}"
            body, m = "", None
            deadline = time.monotonic() + 180
            while m is None:
                assert p.alive(), f"exporter exited:\n{p.tail()}"
                assert time.monotonic() < deadline, \
                    f"no score for g1 after 180 s; /metrics:\n{body[-3000:]}\nlog:\n{p.tail()}"
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
                        body = r.read().decode()
                m = re.search(r'^vmtime_vm_health_score\{[^}]*domain="g1"[^}]*\} (\S+)$',
                              body, re.M)
                if m is None:
                    time.sleep(0.5)
            assert 0 <= float(m.group(1)) <= 100
            assert re.search(r'^vmtime_collector_success\{collector="libvirt"\} 1$', body, re.M)
            # adjtimex read-only works for the unprivileged user.
            assert re.search(r'^vmtime_collector_success\{collector="timex"\} 1$', body, re.M)
            assert re.search(r'^vmtime_vm_agent_up\{[^}]*domain="g1"[^}]*\} 1$', body, re.M)
            # The process serving it is the package's user with no capabilities.
            children = [int(x) for x in open(f"/proc/{p.proc.pid}/task/{p.proc.pid}/children")
                        .read().split()]
            assert len(children) == 1, children
            uid, caps = proc_uid_gid(children[0])
            assert uid == pwd.getpwnam(USER).pw_uid and caps == 0, (uid, hex(caps))
            os.kill(children[0], signal.SIGTERM)
            # Clean stop on SIGTERM (strace exits with the traced exit code).
            assert p.proc.wait(timeout=30) == 0, p.tail()

        lines = open(trace).read().splitlines()
        start = next(i for i, ln in enumerate(lines)
                     if 'execve("/usr/bin/vmtime-exporter"' in ln and "= 0" in ln)
        used, families = set(), set()
        for ln in lines[start + 1:]:
            m = re.match(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)[( ]", ln)
            if m and m.group(1) not in ("exit", "killed", "resumed"):
                used.add(m.group(1))
            f = re.search(r"\bsocket\((AF_[A-Z0-9]+)", ln)
            if f:
                families.add(f.group(1))
        s = unit_settings()
        allowed = expand_syscall_filter(" ".join(s["SystemCallFilter"]).split())
        assert "clock_adjtime" in used, "the timex collector's system call was not seen"
        assert not sorted(used - allowed), \
            f"system calls outside the unit's SystemCallFilter: {sorted(used - allowed)}"
        assert families <= set(s["RestrictAddressFamilies"][0].split()), families
        print(f"exporter used {len(used)} system calls, socket families {sorted(families)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_purge_leaves_nothing(installed):
    dpkg(["--purge", PACKAGE])
    assert package_state() == "not-installed" or package_state().startswith("un"), package_state()
    left = [p for p in installed["new_paths"] if os.path.lexists(p)]
    assert not left, f"left behind after purge: {left}"
    assert not os.path.exists("/etc/vmtime-exporter")
    assert not user_exists(), f"user {USER} left behind"
    assert not group_exists(USER), f"group {USER} left behind"
    if group_exists("libvirt"):
        assert USER not in grp.getgrnam("libvirt").gr_mem
    assert systemd_state() == installed["systemd_before"], systemd_state()


def test_lintian_findings_are_fixed_or_documented(deb):
    """Last in the module: lintian ran in the background meanwhile."""
    found, out = lintian_findings(deb)
    accepted = accepted_lintian_tags()
    unexplained = sorted(f"{sev}: {tag} {extra}" for sev, tag, extra in found
                         if accepted.get(tag) != sev)
    assert not unexplained, (
        "lintian findings neither fixed nor listed with a reason in docs/packaging.md:\n"
        + "\n".join(unexplained) + "\n\nfull output:\n" + out)
    stale = sorted(set(accepted) - {tag for _, tag, _ in found})
    assert not stale, f"docs/packaging.md lists lintian tags lintian no longer reports: {stale}"
