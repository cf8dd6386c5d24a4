"""Shared fixtures: a free local port and a real uvicorn server in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from processes import free_port as free_port  # the tests import it from here
from processes import terminate, wait_listening

TESTS_DIR = Path(__file__).resolve().parent


class UvicornServer:
    """``python -m uvicorn --factory TARGET`` on a free port; stdout/stderr go to files."""

    def __init__(self, target: str, log_dir: Path) -> None:
        self.target = target
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._stdout_path = log_dir / f"uvicorn-{self.port}.out"
        self._stderr_path = log_dir / f"uvicorn-{self.port}.err"
        self._proc: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = 8.0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TESTS_DIR), env.get("PYTHONPATH", "")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [
            sys.executable, "-m", "uvicorn", "--factory", self.target,
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--log-level", "info", "--lifespan", "on",
        ]  # fmt: skip
        with open(self._stdout_path, "wb") as out, open(self._stderr_path, "wb") as err:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=TESTS_DIR)
        failure = wait_listening(self._proc, self.port, timeout)
        if failure:
            self.stop()
            raise RuntimeError(f"uvicorn {failure}:\n{self.stderr()}")

    def stop(self) -> None:
        """Terminates the server (idempotent); afterwards its logs are complete."""
        terminate(self._proc)

    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace") if self._stderr_path.exists() else ""


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[Callable[[str], UvicornServer]]:
    """A factory: ``uvicorn_server("module:factory")`` starts a server and returns it.
    Every server started is terminated at teardown."""
    servers: list[UvicornServer] = []

    def start(target: str) -> UvicornServer:
        server = UvicornServer(target, tmp_path)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
