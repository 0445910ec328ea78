#!/usr/bin/python3
"""scripts/demo always cleans up (issue 19 item 8).

The reported failure: Ctrl-C on `bash scripts/demo | tee demo.log` ends tee
first; the demo's trap then wrote to the closed pipe, died of SIGPIPE, and
left its private libvirtd and three QEMU guests running. Here the real demo
(--no-build: the exporter this build made) runs with its stdout piped into a
reader in another process group. Once the demo says it is ready, the reader
is killed, then SIGINT goes to the demo's process group, as a terminal's
Ctrl-C would. Within a bounded wait the demo exits with 130 and its
libvirtd, QEMU guests and exporter are gone; its teardown.log says so.

Wall time: the demo's own start (three TCG guests, a 20 s pause of one of
them) plus a few seconds of teardown, about 1-2 minutes.
"""

import json
import os
import signal
import subprocess
import tempfile
import time

import integrations_support as sup

SRC = sup.SRC
DEMO = os.path.join(SRC, "scripts", "demo")


def lab_pids(demo_dir):
    """Processes of the demo: whatever runs with the demo's directory (the
    lab's libvirtd, its QEMU guests' disks and sockets) or the lab's id on
    its command line, and the exporter by its pid file."""
    markers = [demo_dir.encode()]
    try:
        with open(os.path.join(demo_dir, "lab", "state.json")) as f:
            state = json.load(f)
        markers.append(f"vmtime.lab={state['lab_id']}".encode())
    except (OSError, ValueError, KeyError):
        pass
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if any(m in cmd for m in markers):
            found[int(entry)] = cmd.replace(b"\0", b" ").decode("utf-8", "replace")[:160]
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_ctrl_c_with_a_closed_output_pipe_tears_everything_down():
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vmtime-demo-") as demo_dir:
        port = sup.free_port()
        env = dict(os.environ, VMTIME_DEMO_DIR=demo_dir)
        if sup.BIN:
            env["VMTIME_BUILD_DIR"] = sup.BIN
        out_path = os.path.join(demo_dir, "reader.out")
        err_path = os.path.join(demo_dir, "demo.stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=out,
                                      start_new_session=True)
            demo = subprocess.Popen(["bash", DEMO, "--no-build", "--port", str(port)],
                                    stdout=reader.stdin, stderr=err, stdin=subprocess.DEVNULL,
                                    env=env, cwd=SRC, start_new_session=True)
        reader.stdin.close()  # the demo holds the only write end now
        try:
            def ready_or_exited():
                with open(out_path) as f:
                    return demo.poll() is not None or "Press Ctrl-C" in f.read()
            try:
                sup.wait_until(ready_or_exited, 300, "the demo to be ready")
                assert demo.poll() is None, f"the demo exited with {demo.returncode}"
            except (TimeoutError, AssertionError) as e:
                raise AssertionError(f"{e}\n--- stdout ---\n{open(out_path).read()[-3000:]}"
                                     f"\n--- stderr ---\n{open(err_path).read()[-3000:]}")
            ready_s = time.monotonic() - t0
            before = lab_pids(demo_dir)
            with open(os.path.join(demo_dir, "exporter.pid")) as f:
                exporter_pid = int(f.read())
            print(f"demo ready after {ready_s:.1f} s; its processes: {before}")
            assert any("libvirtd" in c for c in before.values()), before
            assert sum("qemu-system" in c for c in before.values()) == 3, before
            assert alive(exporter_pid)

            reader.kill()  # the pipe closes first, as with tee on Ctrl-C
            reader.wait(timeout=10)
            os.killpg(demo.pid, signal.SIGINT)
            rc = demo.wait(timeout=90)
            stop_s = time.monotonic() - t0 - ready_s
            gone = sup.wait_until(
                lambda: not [p for p in before if alive(p)] and not alive(exporter_pid),
                60, "the demo's libvirtd, QEMU guests and exporter to be gone")
            assert gone
            print(f"demo exited {rc}; everything gone {stop_s:.1f} s after SIGINT")
            assert rc == 130, f"demo exit code {rc}, expected 130 (SIGINT)"
            assert not lab_pids(demo_dir), lab_pids(demo_dir)
            with open(os.path.join(demo_dir, "teardown.log")) as f:
                log = f.read()
            assert log.count("demo: teardown (SIGINT)") == 1, log
            assert log.count("demo: stopped") == 1, log
            assert not os.path.exists(os.path.join(demo_dir, "lab", "state.json"))
        finally:
            # Whatever happened above: nothing of the demo survives the test.
            for p in (demo, reader):
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait(timeout=10)
            left = lab_pids(demo_dir)
            if left:
                subprocess.run(["bash", DEMO, "--stop"], env=env, cwd=SRC, timeout=120,
                               capture_output=True)
                for pid in lab_pids(demo_dir):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if left:
                print(f"left running after the test (killed now): {left}")
