"""Small helpers shared by the e2e tests: a bounded wait, and a read-only
look at the kernel's clock discipline (tests that run a time daemon or
ptp4l in a network namespace prove with it that the machine's clock,
shared by every namespace, was not touched)."""
import ctypes
import time


def wait_for(fn, timeout, what, interval=0.2):
    """Calls `fn` until it returns a true value (returned) or `timeout`
    seconds passed (TimeoutError naming `what` and the last exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


class Timex(ctypes.Structure):
    """struct timex (linux/timex.h), the fields the tests read and padding."""
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long),
                ("status", ctypes.c_int), ("constant", ctypes.c_long),
                ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long),
                ("tick", ctypes.c_long), ("pad", ctypes.c_long * 20)]


def kernel_discipline():
    """The kernel's discipline state of CLOCK_REALTIME (adjtimex with modes 0:
    reads, changes nothing)."""
    t = Timex()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.adjtimex(ctypes.byref(t)) < 0:
        raise OSError(ctypes.get_errno(), "adjtimex")
    return {"offset": t.offset, "freq": t.freq, "status": t.status, "constant": t.constant,
            "tick": t.tick}
