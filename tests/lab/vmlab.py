#!/usr/bin/python3
"""vmlab: a private libvirt + QEMU (TCG) lab of tiny guests for vmtime tests.

A Lab starts its own libvirtd (own config, state and socket directories, in a
private mount namespace so it never touches a system libvirtd or another
lab, and a private network namespace so it cannot touch host networking), boots small guests built by tests/lab/build-image (kernel + initramfs
with qemu-ga and optionally chronyd, no network device), and offers the clock
and agent failure conditions the exporter must detect: clock steps, stopped
clocks, pause/resume, killed or hung guest agents, a libvirtd restart.

Times: guest_time() returns the guest's CLOCK_REALTIME in nanoseconds as the
guest agent reports it (guest-get-time); guest_offset() returns guest minus
host CLOCK_REALTIME in seconds (positive = guest ahead).

Every wait is bounded and raises TimeoutError naming what was awaited, with
the tails of the guest console log, the QEMU log and the libvirtd log.

Usage:
    with Lab(guests=[GuestSpec("g1", chrony="local10")]) as lab:
        lab.step_clock("g1", -300)
        print(lab.guest_offset("g1"))

Teardown (close()) runs on context exit, at interpreter exit, on SIGTERM /
SIGHUP, and, if the test process is killed outright, from a small reaper
process that notices its parent is gone.
"""

import atexit
import base64
import concurrent.futures
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import libvirt
import libvirt_qemu

LAB_DIR = os.path.dirname(os.path.abspath(__file__))
BUILD_IMAGE = os.path.join(LAB_DIR, "build-image")
CHRONY_MODES = ("none", "local10", "unreachable")
STATE_FILE = "state.json"
# Host paths the private libvirtd sees replaced by workdir subdirectories.
_BIND_DIRS = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
)
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes; keep a margin.


def _silence_libvirt(_ctx, _err):
    """libvirt prints every error to stderr by default; we raise instead."""


libvirt.registerErrorHandler(_silence_libvirt, None)


@dataclasses.dataclass
class GuestSpec:
    """One lab guest. chrony: 'none' (no daemon), 'local10' (chronyd with only
    `local stratum 10`), 'unreachable' (chronyd whose only server 192.0.2.1
    never answers)."""

    name: str
    chrony: str = "none"
    memory_mib: int = 192

    def __post_init__(self):
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            raise ValueError(f"GuestSpec: bad guest name {self.name!r} (use [A-Za-z0-9_-])")
        if self.chrony not in CHRONY_MODES:
            raise ValueError(
                f"GuestSpec {self.name}: chrony={self.chrony!r}, expected one of {CHRONY_MODES}"
            )


class LabError(RuntimeError):
    """A lab operation failed (not a timeout)."""


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
        return "\n".join(data.splitlines()[-lines:])
    except OSError as e:
        return f"<{path}: {e.strerror}>"


def _pid_alive(pid: Optional[int]) -> bool:
    """True if pid exists and is not a zombie."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        try:  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not _pid_alive(pid)


def _kill(pid: Optional[int], sig: int) -> None:
    if pid and _pid_alive(pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _ensure_host_prereqs() -> None:
    """libvirtd's QEMU driver refuses to start without the libvirt-qemu user,
    and the bind mounts need their mount points."""
    for _, host_path in _BIND_DIRS:
        os.makedirs(host_path, exist_ok=True)

    def exists(db):
        return subprocess.run(["getent", db, "libvirt-qemu"], capture_output=True,
                              timeout=10).returncode == 0

    for db, cmd in (("group", ["groupadd", "--system", "libvirt-qemu"]),
                    ("passwd", ["useradd", "--system", "-g", "libvirt-qemu", "-d",
                                "/var/lib/libvirt", "-s", "/usr/sbin/nologin", "libvirt-qemu"])):
        if not exists(db):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            # Another lab may have created it meanwhile.
            if r.returncode != 0 and not exists(db):
                raise LabError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")


_REQUIRED_TOOLS = ("unshare", "libvirtd", "qemu-system-x86_64", "cpio", "getent")


def lab_available() -> Tuple[bool, str]:
    """(True, "") if this machine can run a Lab, else (False, reason): needs
    root (mount namespace, privileged libvirtd) and the Debian packages in
    scripts/setup."""
    if os.geteuid() != 0:
        return False, "vmlab needs root (unshare --mount and a privileged libvirtd)"
    for tool in _REQUIRED_TOOLS:
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return False, f"vmlab needs {tool} (run scripts/setup)"
    return True, ""


def _cache_root() -> str:
    return os.environ.get("VMTIME_LAB_CACHE", "/var/tmp/vmtime-lab-image")


def build_image(timeout: float = 600) -> str:
    """Runs tests/lab/build-image (cached) and returns the image directory."""
    try:
        r = subprocess.run([BUILD_IMAGE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise TimeoutError(f"build-image did not finish within {timeout} s") from e
    if r.returncode != 0:
        raise LabError(f"build-image failed (exit {r.returncode}): {r.stderr.strip()}")
    image_dir = r.stdout.strip().splitlines()[-1]
    for f in ("vmlinuz", "initrd.img"):
        if not os.path.isfile(os.path.join(image_dir, f)):
            raise LabError(f"build-image printed {image_dir!r} but {f} is missing there")
    return image_dir


# Labs open in this process, closed at exit / on SIGTERM / SIGHUP.
_open_labs: "List[Lab]" = []
_handlers_installed = False
_registry_lock = threading.Lock()


def _close_all_labs() -> None:
    for lab in list(_open_labs):
        try:
            lab.close()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            print(f"vmlab: teardown of {lab.workdir} failed: {e}", file=sys.stderr)


def _on_signal(signum, _frame):
    _close_all_labs()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _register(lab: "Lab") -> None:
    global _handlers_installed
    with _registry_lock:
        _open_labs.append(lab)
        if not _handlers_installed:
            atexit.register(_close_all_labs)
            if threading.current_thread() is threading.main_thread():
                for s in (signal.SIGTERM, signal.SIGHUP):
                    if signal.getsignal(s) in (signal.SIG_DFL, None):
                        signal.signal(s, _on_signal)
            _handlers_installed = True


def _unregister(lab: "Lab") -> None:
    with _registry_lock:
        if lab in _open_labs:
            _open_labs.remove(lab)


class Lab:
    """A private libvirtd with N tiny TCG guests. See the module docstring."""

    def __init__(
        self,
        workdir: Optional[str] = None,
        guests: Union[int, Sequence[GuestSpec]] = 1,
        *,
        image_dir: Optional[str] = None,
        boot_timeout: float = 120.0,
        wait: bool = True,
        reaper: bool = True,
        keep_workdir: bool = False,
        tb_cache_mib: int = 64,
    ):
        """Starts libvirtd and the guests; with wait=True returns once every
        guest agent answers guest-get-time (bounded by boot_timeout).

        workdir: created if missing (and then removed by close()); if it
        exists it must not hold a running lab. Default: a new temp dir.
        guests: a count (guests g1..gN, no chronyd) or GuestSpec list.
        reaper: start a watchdog process that tears the lab down if this
        process dies without close() (False for `vmlab up`).
        keep_workdir: leave the workdir (logs) after close(); also forced by
        env VMTIME_LAB_KEEP=1.
        """
        ok, why = lab_available()
        if not ok:
            raise LabError(why)
        self._lock = threading.RLock()
        self._closed = False
        self._conn: Optional[libvirt.virConnect] = None
        self._proc: Optional[subprocess.Popen] = None
        self._reaper: Optional[subprocess.Popen] = None
        if isinstance(guests, int):
            specs = [GuestSpec(f"g{i}") for i in range(1, guests + 1)]
        else:
            specs = list(guests)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"Lab: duplicate guest names in {names}")

        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="vmlab-")
            own_workdir = True
        else:
            workdir = os.path.abspath(workdir)
            own_workdir = not os.path.exists(workdir)
            if os.path.exists(os.path.join(workdir, STATE_FILE)):
                raise LabError(
                    f"{workdir} already holds a lab ({STATE_FILE}); tear it down first "
                    f"(vmlab down --dir {workdir})")
            os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        sock_dir = os.path.join(workdir, "sock")
        own_sock_dir = False
        if len(os.path.join(sock_dir, "libvirt-admin-sock")) > _SUN_PATH_MAX:
            sock_dir = tempfile.mkdtemp(prefix="vmlab-sock-", dir="/tmp")
            own_sock_dir = True
        self._state: Dict = {
            "workdir": workdir,
            "own_workdir": own_workdir,
            "keep_workdir": bool(keep_workdir or os.environ.get("VMTIME_LAB_KEEP") == "1"),
            "sock_dir": sock_dir,
            "own_sock_dir": own_sock_dir,
            "libvirtd_pid": None,
            "reaper_pid": None,
            "image_dir": None,
            "tb_cache_mib": tb_cache_mib,
            # Put on every guest's kernel command line: finds this lab's QEMU
            # processes even when libvirtd is gone.
            "lab_id": os.urandom(8).hex(),
            "guests": [],
        }
        self._boot_timeout = boot_timeout
        _register(self)
        try:
            self._state["image_dir"] = image_dir or build_image()
            self._write_state()
            if reaper:
                self._start_reaper()
            _ensure_host_prereqs()
            self._write_configs()
            self.start_libvirtd()
            if specs:
                with concurrent.futures.ThreadPoolExecutor(len(specs)) as pool:
                    for f in [pool.submit(self.add_guest, spec, False) for spec in specs]:
                        f.result()
            if wait:
                self.wait_all_agents(boot_timeout)
        except BaseException:
            self.close()
            raise

    # --- attach / state ----------------------------------------------------

    @classmethod
    def attach(cls, workdir: str) -> "Lab":
        """Returns a Lab for a lab already running in workdir (started by
        `vmlab up` or another process). close() on it tears the lab down."""
        workdir = os.path.abspath(workdir)
        path = os.path.join(workdir, STATE_FILE)
        try:
            with open(path) as f:
                state = json.load(f)
        except FileNotFoundError:
            raise LabError(f"no lab in {workdir} ({STATE_FILE} missing)") from None
        except (OSError, ValueError) as e:
            raise LabError(f"{path}: unreadable lab state: {e}") from None
        lab = cls.__new__(cls)
        lab._lock = threading.RLock()
        lab._closed = False
        lab._conn = None
        lab._proc = None
        lab._reaper = None
        lab.workdir = workdir
        lab._state = state
        lab._boot_timeout = 120.0
        return lab

    def _write_state(self) -> None:
        path = os.path.join(self.workdir, STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self._state, f, indent=2)
        os.replace(tmp, path)

    def _path(self, *parts: str) -> str:
        return os.path.join(self.workdir, *parts)

    # --- properties ----------------------------------------------------------

    @property
    def uri(self) -> str:
        """libvirt URI of this lab's private libvirtd (read-write)."""
        return f"qemu+unix:///system?socket={self._state['sock_dir']}/libvirt-sock"

    @property
    def conn(self) -> libvirt.virConnect:
        """This process's libvirt connection to the lab (opened on demand)."""
        with self._lock:
            if self._conn is None or not self._conn_alive():
                self._conn = libvirt.open(self.uri)
            return self._conn

    @property
    def guests(self) -> List[GuestSpec]:
        return [GuestSpec(**g) for g in self._state["guests"]]

    @property
    def guest_names(self) -> List[str]:
        return [g["name"] for g in self._state["guests"]]

    @property
    def image_dir(self) -> str:
        return self._state["image_dir"]

    @property
    def libvirtd_pid(self) -> Optional[int]:
        return self._state["libvirtd_pid"]

    def console_log(self, name: str) -> str:
        """Path of the guest's serial console log."""
        return self._path("guests", name, "console.log")

    def libvirtd_log(self) -> str:
        return self._path("libvirtd.log")

    def qemu_pid(self, name: str) -> Optional[int]:
        """PID of the guest's QEMU process (from libvirt's pid file)."""
        try:
            with open(self._path("run", "qemu", f"{name}.pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError):
            return None
        if b"qemu-system" not in cmd or f"guest={name},".encode() not in cmd:
            return None  # stale pid file, pid reused
        return pid if _pid_alive(pid) else None

    def domain(self, name: str) -> libvirt.virDomain:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as e:
            raise LabError(f"guest {name}: {e}") from None

    def diagnostics(self, name: Optional[str] = None) -> str:
        """Tails of the logs, for error messages."""
        parts = []
        if name:
            parts.append(f"--- console of {name} ({self.console_log(name)}):\n"
                         + _tail(self.console_log(name)))
            qlog = self._path("log", "qemu", f"{name}.log")
            parts.append(f"--- qemu log of {name} ({qlog}):\n" + _tail(qlog, 8))
        parts.append(f"--- libvirtd log ({self.libvirtd_log()}):\n" + _tail(self.libvirtd_log()))
        return "\n".join(parts)

    # --- libvirtd ------------------------------------------------------------

    def _write_configs(self) -> None:
        for sub, _ in _BIND_DIRS:
            os.makedirs(self._path(sub), exist_ok=True)
        os.makedirs(self._state["sock_dir"], exist_ok=True)
        os.makedirs(self._path("guests"), exist_ok=True)
        # Seed libvirt's QEMU capabilities cache from earlier labs (libvirt
        # re-probes by itself if the binaries changed): saves ~2 s per lab.
        shared = os.path.join(_cache_root(), "qemu-capabilities")
        mine = self._path("cache", "qemu", "capabilities")
        if os.path.isdir(shared):
            os.makedirs(mine, exist_ok=True)
            for f in os.listdir(shared):
                if f.endswith(".xml"):
                    shutil.copyfile(os.path.join(shared, f), os.path.join(mine, f))
        with open(self._path("etc", "libvirtd.conf"), "w") as f:
            f.write(
                "# vmlab private libvirtd\n"
                f'unix_sock_dir = "{self._state["sock_dir"]}"\n'
                'unix_sock_group = "root"\n'
                'unix_sock_ro_perms = "0777"\n'
                'unix_sock_rw_perms = "0770"\n'
                'auth_unix_rw = "none"\n'
                'auth_unix_ro = "none"\n'
                f'log_outputs = "3:file:{self.libvirtd_log()}"\n')
        with open(self._path("etc", "qemu.conf"), "w") as f:
            f.write(
                "# vmlab private QEMU driver\n"
                'user = "root"\n'
                'group = "root"\n'
                "cgroup_controllers = [ ]\n"
                'security_driver = "none"\n'
                'stdio_handler = "file"\n'
                "namespaces = [ ]\n")

    def _libvirtd_running(self) -> bool:
        return _pid_alive(self._state.get("libvirtd_pid"))

    def _conn_alive(self) -> bool:
        try:
            return self._conn is not None and self._conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def start_libvirtd(self, timeout: float = 30.0, wait_agents: bool = True) -> None:
        """Starts the private libvirtd on this lab's socket (again, after
        kill_libvirtd()); running guests are reconnected. Waits until the
        socket answers and every known guest is listed as running, and with
        wait_agents until their agents answer again (pass False when an
        agent is deliberately hung or killed). All within timeout seconds."""
        with self._lock:
            if self._libvirtd_running():
                raise LabError(f"libvirtd already running (pid {self._state['libvirtd_pid']})")
            for sock in ("libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock"):
                try:
                    os.unlink(os.path.join(self._state["sock_dir"], sock))
                except FileNotFoundError:
                    pass
            binds = "; ".join(
                f"mount --bind '{self._path(sub)}' '{host}'" for sub, host in _BIND_DIRS)
            script = (f"set -e; mount --make-rprivate / ; {binds}; "
                      f"exec libvirtd --config '{self._path('etc', 'libvirtd.conf')}' "
                      f"--pid-file '{self._path('libvirtd.pid')}'")
            out = open(self._path("libvirtd.stdout"), "ab")
            try:
                self._proc = subprocess.Popen(
                    ["unshare", "--mount", "--net", "--propagation", "private", "--", "sh", "-c", script],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, close_fds=True)
            finally:
                out.close()
            self._state["libvirtd_pid"] = self._proc.pid
            self._write_state()
            self._conn = None
            deadline = time.monotonic() + timeout
            last_err = None
            while True:
                if self._proc.poll() is not None:
                    raise LabError(
                        f"libvirtd exited with status {self._proc.returncode} at start\n"
                        + _tail(self._path("libvirtd.stdout")) + "\n" + self.diagnostics())
                try:
                    self._conn = libvirt.open(self.uri)
                    break
                except libvirt.libvirtError as e:
                    last_err = e
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"libvirtd (pid {self._proc.pid}) did not accept connections on "
                        f"{self.uri} within {timeout} s: {last_err}\n" + self.diagnostics())
                time.sleep(0.1)
            # After a restart, wait until the guests are reconnected.
            expected = [g["name"] for g in self._state["guests"] if self.qemu_pid(g["name"])]
            while True:
                try:
                    running = {d.name() for d in self._conn.listAllDomains()}
                except libvirt.libvirtError as e:
                    running, last_err = set(), e
                missing = [n for n in expected if n not in running]
                if not missing:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"restarted libvirtd did not reconnect guests {missing} within "
                        f"{timeout} s\n" + self.diagnostics())
                time.sleep(0.1)
            if wait_agents:
                for name in expected:
                    self.wait_agent(name, max(1.0, deadline - time.monotonic()))

    def kill_libvirtd(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stops the private libvirtd with sig (SIGTERM: clean shutdown,
        SIGKILL: crash). Guests (QEMU processes) keep running."""
        with self._lock:
            pid = self._state.get("libvirtd_pid")
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None
            _kill(pid, sig)
            if pid and not _wait_pid_gone(pid, timeout):
                raise TimeoutError(f"libvirtd (pid {pid}) still alive {timeout} s after signal {sig}")
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
                self._proc = None
            self._state["libvirtd_pid"] = None
            self._write_state()

    # --- reaper --------------------------------------------------------------

    def _start_reaper(self) -> None:
        log = open(self._path("reaper.log"), "ab")
        try:
            self._reaper = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--reap", self.workdir],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True)
        finally:
            log.close()
        self._state["reaper_pid"] = self._reaper.pid
        self._write_state()

    # --- guests --------------------------------------------------------------

    def _domain_xml(self, spec: GuestSpec) -> str:
        img = self._state["image_dir"]
        tb = self._state.get("tb_cache_mib") or 0
        features = (f"<features><acpi/><tcg><tb-cache unit='MiB'>{tb}</tb-cache></tcg></features>"
                    if tb else "<features><acpi/></features>")
        return f"""<domain type='qemu'>
  <name>{spec.name}</name>
  <memory unit='MiB'>{spec.memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{img}/vmlinuz</kernel>
    <initrd>{img}/initrd.img</initrd>
    <cmdline>console=ttyS0 panic=-1 vmtime.chrony={spec.chrony} vmtime.lab={self._state["lab_id"]}</cmdline>
  </os>
  {features}
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{self.console_log(spec.name)}'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <memballoon model='none'/>
    <video><model type='none'/></video>
  </devices>
</domain>
"""

    def add_guest(self, spec: GuestSpec, wait: bool = True, timeout: Optional[float] = None) -> None:
        """Defines and starts one more guest (transient domain)."""
        with self._lock:
            if any(g["name"] == spec.name for g in self._state["guests"]) and self.qemu_pid(spec.name):
                raise LabError(f"guest {spec.name} already running")
            gdir = self._path("guests", spec.name)
            os.makedirs(gdir, exist_ok=True)
            xml = self._domain_xml(spec)
            with open(os.path.join(gdir, "domain.xml"), "w") as f:
                f.write(xml)
            self._state["guests"] = [g for g in self._state["guests"] if g["name"] != spec.name]
            self._state["guests"].append(dataclasses.asdict(spec))
            self._write_state()
            conn = self.conn
        try:
            conn.createXML(xml, 0)  # outside the lock: guests start in parallel
        except libvirt.libvirtError as e:
            raise LabError(f"starting guest {spec.name} failed: {e}\n"
                           + self.diagnostics(spec.name)) from None
        self._save_qemu_capabilities()
        if wait:
            self.wait_agent(spec.name, timeout if timeout is not None else self._boot_timeout)

    def _save_qemu_capabilities(self) -> None:
        """Shares this libvirtd's QEMU capabilities cache with later labs."""
        mine = self._path("cache", "qemu", "capabilities")
        shared = os.path.join(_cache_root(), "qemu-capabilities")
        try:
            files = [f for f in os.listdir(mine) if f.endswith(".xml")]
            os.makedirs(shared, exist_ok=True)
            for f in files:
                src, dst = os.path.join(mine, f), os.path.join(shared, f)
                if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
                    continue
                tmp = f"{dst}.{os.getpid()}.tmp"
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
        except OSError:
            pass  # only an optimisation

    def destroy(self, name: str) -> None:
        """Hard power-off of the guest; its domain disappears from libvirt."""
        try:
            self.domain(name).destroy()
        except libvirt.libvirtError as e:
            raise LabError(f"destroy {name}: {e}") from None

    def pause(self, name: str) -> None:
        """Suspends the guest's vCPUs (virDomainSuspend): its clock falls
        behind by the pause length once resumed."""
        self.domain(name).suspend()

    def resume(self, name: str) -> None:
        self.domain(name).resume()

    def pause_for(self, name: str, seconds: float) -> None:
        """pause(); sleep seconds; resume() (blocks for seconds)."""
        self.pause(name)
        try:
            time.sleep(seconds)
        finally:
            self.resume(name)

    def save_restore(self, name: str, seconds: float = 0.0, timeout: float = 120.0) -> float:
        """Saves the guest to a file in the workdir (virDomainSave: the
        domain stops), waits seconds, restores it (virDomainRestore: a new
        QEMU process, libvirt event STARTED/RESTORED) and waits for its
        agent. The guest clock is then behind by about the time it was
        down, which is returned (seconds, host monotonic, save start to
        restore end)."""
        path = self._path("guests", name, "save.img")
        t0 = time.monotonic()
        try:
            self.domain(name).save(path)
            time.sleep(seconds)
            try:
                self.conn.restore(path)
            except libvirt.libvirtError as e:
                raise LabError(f"restore of {name} from {path} failed: {e}\n"
                               + self.diagnostics(name)) from None
            down = time.monotonic() - t0
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.wait_agent(name, timeout)
        return down

    def state(self, name: str) -> int:
        """libvirt domain state (libvirt.VIR_DOMAIN_RUNNING, ..._PAUSED, ...)."""
        return self.domain(name).state()[0]

    def set_agent_timeout(self, name: str, seconds: int) -> None:
        """virDomainAgentSetResponseTimeout: per domain, for every client."""
        self.domain(name).agentSetResponseTimeout(int(seconds), 0)

    # --- guest agent ---------------------------------------------------------

    def agent_command(self, name: str, command: str, arguments: Optional[dict] = None,
                      timeout: int = 10):
        """Sends one guest agent command (virDomainQemuAgentCommand) with a
        per-call timeout in whole seconds; returns the decoded "return"
        value. Raises LabError on agent errors (incl. its timeout)."""
        msg = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        dom = self.domain(name)
        try:
            reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(msg), max(1, int(timeout)), 0)
        except libvirt.libvirtError as e:
            raise LabError(f"guest {name}: agent command {command} failed: {e}") from None
        return json.loads(reply).get("return")

    def wait_agent(self, name: str, timeout: float = 120.0) -> float:
        """Waits until the guest agent answers guest-get-time; returns the
        seconds waited. Raises TimeoutError after timeout seconds."""
        start = time.monotonic()
        deadline = start + timeout
        last = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                self.agent_command(name, "guest-get-time", timeout=int(min(5, max(1, remaining))))
                return time.monotonic() - start
            except LabError as e:
                last = e
            if time.monotonic() + 0.5 > deadline:
                raise TimeoutError(
                    f"guest {name}: agent did not answer guest-get-time within {timeout} s "
                    f"(last error: {last})\n" + self.diagnostics(name))
            time.sleep(0.5)

    def wait_all_agents(self, timeout: float = 120.0) -> Dict[str, float]:
        """wait_agent for every guest, all within one overall timeout;
        returns name -> seconds since this call until the agent answered."""
        start = time.monotonic()
        done = {}
        for name in self.guest_names:
            remaining = max(1.0, timeout - (time.monotonic() - start))
            self.wait_agent(name, remaining)
            done[name] = time.monotonic() - start
        return done

    def guest_time(self, name: str, timeout: int = 10) -> int:
        """Guest CLOCK_REALTIME in ns (guest-get-time)."""
        return int(self.agent_command(name, "guest-get-time", timeout=timeout))

    def guest_offset(self, name: str, samples: int = 3) -> Tuple[float, float]:
        """(offset_s, uncertainty_s): guest minus host CLOCK_REALTIME in
        seconds, bracketed, best of samples by round trip."""
        best = None
        for _ in range(max(1, samples)):
            t0 = time.time_ns()
            g = self.guest_time(name)
            t1 = time.time_ns()
            cand = ((g - (t0 + t1) / 2) / 1e9, (t1 - t0) / 2e9)
            if best is None or cand[1] < best[1]:
                best = cand
        return best

    def guest_exec(self, name: str, argv: Sequence[str], timeout: float = 30.0,
                   input_data: Optional[bytes] = None) -> Tuple[int, str, str]:
        """Runs argv in the guest (guest-exec, PATH searched) and waits for it
        (bounded). Returns (exit code or -signal, stdout, stderr)."""
        args = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if input_data is not None:
            args["input-data"] = base64.b64encode(input_data).decode()
        pid = self.agent_command(name, "guest-exec", args, timeout=int(min(10, max(1, timeout))))["pid"]
        deadline = time.monotonic() + timeout
        while True:
            st = self.agent_command(name, "guest-exec-status", {"pid": pid}, timeout=10)
            if st.get("exited"):
                out = base64.b64decode(st.get("out-data", "")).decode("utf-8", "replace")
                err = base64.b64decode(st.get("err-data", "")).decode("utf-8", "replace")
                code = st["exitcode"] if "exitcode" in st else -int(st.get("signal", 0))
                return code, out, err
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest {name}: {list(argv)} did not exit within {timeout} s\n"
                                   + self.diagnostics(name))
            time.sleep(0.05)

    def _sh(self, name: str, script: str, timeout: float = 30.0) -> str:
        code, out, err = self.guest_exec(name, ["/bin/sh", "-c", script], timeout)
        if code != 0:
            raise LabError(f"guest {name}: sh -c {script!r} exited {code}: {err.strip()}")
        return out

    def _spawn_detached(self, name: str, script: str) -> None:
        """Starts script in its own session in the guest, detached from the
        agent (survives qemu-ga being stopped or killed)."""
        inner = script.replace("'", "'\\''")
        self._sh(name, f"setsid sh -c '{inner}' </dev/null >/dev/null 2>&1 &")

    # --- clock conditions ----------------------------------------------------

    def step_clock(self, name: str, seconds: float, method: str = "agent") -> int:
        """Steps the guest clock by seconds (negative = backwards) relative to
        its current time, read first with guest-get-time. method 'agent'
        uses guest-set-time (ns precision; also writes the guest RTC), 'date'
        guest-execs `date -s @<whole seconds>`. Returns the target ns."""
        now = self.guest_time(name)
        target = now + int(round(seconds * 1e9))
        if method == "agent":
            self.agent_command(name, "guest-set-time", {"time": target}, timeout=15)
        elif method == "date":
            self._sh(name, f"date -s @{int(round(target / 1e9))} >/dev/null")
        else:
            raise ValueError(f"step_clock: method {method!r}, expected 'agent' or 'date'")
        return target

    def set_clock_to_host(self, name: str) -> None:
        """Sets the guest clock to the host's CLOCK_REALTIME (virDomainSetTime)."""
        ns = time.time_ns()
        self.domain(name).setTime({"seconds": ns // 10**9, "nseconds": ns % 10**9}, 0)

    def hold_clock(self, name: str, verify: bool = True) -> int:
        """Stops the guest clock: a detached guest loop resets it to the same
        whole second every 0.2 s. With verify, checks with two guest-get-time
        reads 1.5 s apart that it advanced by less than 0.6 s. Returns the
        held time in ns (second boundary)."""
        self._spawn_detached(
            name,
            "echo $$ > /run/vmtime-hold.pid; T=$(date +%s); "
            "while :; do date -s @$T >/dev/null; usleep 200000; done")
        time.sleep(0.5)
        if verify:
            a = self.guest_time(name)
            time.sleep(1.5)
            b = self.guest_time(name)
            if b - a > 600_000_000:
                raise LabError(f"guest {name}: clock still advancing after hold_clock "
                               f"({(b - a) / 1e9:.3f} s in 1.5 s)")
            return b - b % 10**9
        return self.guest_time(name)

    def release_clock(self, name: str, resync: bool = False) -> None:
        """Stops the hold_clock loop; the clock advances again from where it
        was held (so it stays behind) unless resync, which then sets it to
        the host's time."""
        self._sh(name, "[ -f /run/vmtime-hold.pid ] && kill $(cat /run/vmtime-hold.pid); "
                       "rm -f /run/vmtime-hold.pid; true")
        if resync:
            self.set_clock_to_host(name)

    def drift_clock(self, name: str, ppm: float) -> Tuple[int, int]:
        """Makes the guest clock run fast (ppm > 0) or slow (ppm < 0) by
        that many parts per million through the guest kernel's adjtimex
        tick (100 ppm per unit around 10000) and frequency (65536 units per
        ppm, at most 500 ppm). |ppm| up to 100000 (10 %); 0 restores the
        nominal rate. Returns the (tick, freq) set. No chronyd mode of the
        lab steers the clock, so the rate holds until changed."""
        if abs(ppm) > 100000:
            raise ValueError(f"drift_clock: {ppm} ppm is beyond the kernel's +-10 % tick range")
        tick = 10000 + int(ppm / 100)
        rest_ppm = ppm - (tick - 10000) * 100
        freq = int(round(rest_ppm * 65536))
        self._sh(name, f"adjtimex -q -t {tick} -f {freq}")
        return tick, freq

    # --- agent conditions ----------------------------------------------------

    def kill_agent(self, name: str, restart_after: Optional[float] = None,
                   timeout: float = 15.0) -> None:
        """Kills qemu-ga in the guest (SIGTERM); agent calls then fail with
        "not connected". With restart_after, a detached guest shell starts
        qemu-ga again after that many seconds. Waits (bounded) until an agent
        call fails."""
        restart = ""
        if restart_after is not None:
            restart = (f"; sleep {float(restart_after)}; qemu-ga -m virtio-serial "
                       "-p $(cat /run/vmtime-agent-port) -l /run/qemu-ga.log -d")
        self._spawn_detached(name, "usleep 500000; kill $(pidof qemu-ga)" + restart)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.3)
            try:
                self.agent_command(name, "guest-get-time", timeout=2)
            except LabError:
                return
        raise TimeoutError(f"guest {name}: agent still answers {timeout} s after kill_agent\n"
                           + self.diagnostics(name))

    def hang_agent(self, name: str) -> None:
        """Stops qemu-ga in the guest with SIGSTOP, for good: agent calls then
        block until their timeout (libvirt's default agent timeout is over
        120 s: use set_agent_timeout() first). Only destroy() heals it."""
        self._spawn_detached(name, "usleep 500000; kill -STOP $(pidof qemu-ga)")
        time.sleep(1.5)

    def hang_agent_for(self, name: str, seconds: float) -> None:
        """Stops qemu-ga with SIGSTOP for seconds, then SIGCONT (a detached
        guest shell does both, so it heals even if the caller dies). Returns
        once the agent is stopped (about 1.5 s)."""
        self._spawn_detached(
            name, f"usleep 500000; P=$(pidof qemu-ga); kill -STOP $P; "
                  f"sleep {float(seconds)}; kill -CONT $P")
        time.sleep(1.5)

    # --- teardown ------------------------------------------------------------

    def _lab_qemu_pids(self) -> List[int]:
        """QEMU processes of this lab: libvirt's pid files, plus any process
        whose command line carries this lab's id (vmtime.lab=<id>)."""
        pids = set()
        try:
            for entry in os.listdir(self._path("run", "qemu")):
                if entry.endswith(".pid"):
                    pid = self.qemu_pid(entry[:-4])
                    if pid:
                        pids.add(pid)
        except OSError:
            pass
        marker = f"vmtime.lab={self._state.get('lab_id', '-')}".encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"qemu-system" in cmd.split(b"\0", 1)[0] and marker in cmd and _pid_alive(int(entry)):
                pids.add(int(entry))
        return sorted(pids)

    def close(self) -> None:
        """Destroys the guests, stops libvirtd and any QEMU it started,
        removes the workdir (unless kept). Idempotent; never raises for
        already-gone pieces."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors = []
            if self._libvirtd_running():
                def destroy(dom):
                    try:
                        dom.destroy()
                    except libvirt.libvirtError:
                        pass

                try:
                    doms = self.conn.listAllDomains()
                    if doms:
                        with concurrent.futures.ThreadPoolExecutor(len(doms)) as pool:
                            list(pool.map(destroy, doms))
                except libvirt.libvirtError:
                    pass
                try:
                    self.kill_libvirtd(signal.SIGTERM, timeout=15)
                except TimeoutError:
                    pid = self._state.get("libvirtd_pid")
                    _kill(pid, signal.SIGKILL)
                    if pid and not _wait_pid_gone(pid, 5):
                        errors.append(f"libvirtd {pid} survives SIGKILL")
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None
            for pid in self._lab_qemu_pids():
                _kill(pid, signal.SIGKILL)
                if not _wait_pid_gone(pid, 10):
                    errors.append(f"qemu {pid} survives SIGKILL")
            if self._state.get("own_sock_dir"):
                shutil.rmtree(self._state["sock_dir"], ignore_errors=True)
            if not self._state.get("keep_workdir"):
                try:
                    os.unlink(self._path(STATE_FILE))
                except FileNotFoundError:
                    pass
                if self._state.get("own_workdir"):
                    shutil.rmtree(self.workdir, ignore_errors=True)
                else:
                    for sub in [s for s, _ in _BIND_DIRS] + ["guests", "sock"]:
                        shutil.rmtree(self._path(sub), ignore_errors=True)
            else:
                try:
                    os.rename(self._path(STATE_FILE), self._path(STATE_FILE + ".closed"))
                except OSError:
                    pass
            if self._reaper is not None:
                try:
                    self._reaper.stdin.close()
                    self._reaper.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                self._reaper = None
            else:
                rp = self._state.get("reaper_pid")
                if rp and rp != os.getpid():
                    _kill(rp, signal.SIGTERM)
            _unregister(self)
            if errors:
                raise LabError("teardown incomplete: " + "; ".join(errors))

    def detach(self) -> None:
        """Leaves the lab running and forgets it in this process: no teardown
        at exit (used by `vmlab up`; reattach with Lab.attach(workdir))."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None
            self._closed = True
            _unregister(self)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lab(workdir={self.workdir!r}, uri={self.uri!r}, guests={self.guest_names})"


def _reap(workdir: str) -> int:
    """Reaper process: waits for its parent to close our stdin (close() or
    death), then tears down whatever is left of the lab."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sys.stdin.buffer.read()
    except Exception:  # noqa: BLE001
        pass
    path = os.path.join(workdir, STATE_FILE)
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return 0
    if state.get("reaper_pid") != os.getpid():
        return 0
    print(f"vmlab reaper: parent gone, tearing down {workdir}", flush=True)
    lab = Lab.attach(workdir)
    lab._state["reaper_pid"] = None
    lab.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--reap":
        sys.exit(_reap(sys.argv[2]))
    print("vmlab.py is a module; use tests/lab/vmlab for the command line", file=sys.stderr)
    sys.exit(2)
