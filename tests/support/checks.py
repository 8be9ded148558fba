"""Helpers shared by the Python system tests (observability, routing, helm):
starting mcserve on a port of its own, free ports (for other programs), waiting
for a condition, and a list of named checks that prints each result and ends
the run with an exit code."""
import os
import shutil
import socket
import subprocess
import time


def cli_text(stdout):
    """The text `mcserve-cli generate` printed: it ends its output with a newline unless
    the text itself does."""
    return stdout[:-1] if stdout.endswith("\n") and not stdout.endswith("\n\n") else stdout


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mcserve(server, flags, log_path, timeout=60.0):
    """Starts mcserve on a gRPC port it picks itself (--listen=127.0.0.1:0 and --port_file,
    which it writes once it listens, after any other port files), so no other process can
    take the port in between; returns (process, port). Raises if it exits first."""
    port_file = log_path + ".port"
    if os.path.exists(port_file):
        os.remove(port_file)
    with open(log_path, "w") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([server, "--listen=127.0.0.1:0", f"--port_file={port_file}"] + flags,
                                stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mcserve exited with {proc.returncode} before listening; see {log_path}")
        if os.path.exists(port_file):
            return proc, int(open(port_file).read().strip())
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"mcserve did not listen within {timeout} s; see {log_path}")


def wait_for(what, fn, timeout=60.0, interval=0.1):
    """Calls fn until it returns something true (exceptions count as not yet)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception:  # not up yet
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class Checks:
    """Named pass/fail checks, printed as they happen."""

    def __init__(self):
        self.failed = []

    def check(self, ok, msg):
        print(("  ok    " if ok else "  FAIL  ") + msg)
        if not ok:
            self.failed.append(msg)
        return ok

    def finish(self, tmp):
        """Exit code for the run; keeps `tmp` (logs) only when a check failed."""
        if self.failed:
            print(f"\n{len(self.failed)} check(s) failed; logs and files in {tmp}")
            return 1
        shutil.rmtree(tmp, ignore_errors=True)
        print("\nall checks passed")
        return 0
