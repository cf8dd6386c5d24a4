"""What the tests that start a server in a subprocess share: a free port, waiting for
it to listen, and terminating it."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(proc: subprocess.Popen[Any], port: int, timeout: float) -> str:
    """Waits until something accepts connections on ``port``: ``""`` once it does, else
    why not (``proc`` exited, or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return ""
        except OSError:
            time.sleep(0.05)
    return f"did not listen on {port} within {timeout} s"


def terminate(proc: subprocess.Popen[Any] | None, grace: float = 5.0) -> None:
    """Terminates ``proc`` and waits for it (idempotent), killing it after ``grace``
    seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
