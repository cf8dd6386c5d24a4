"""A throwaway PostgreSQL 15 cluster for the tests.

``initdb`` refuses to run as root, so the cluster belongs to the ``postgres`` user: its
folder is a temp folder owned by it, and ``initdb`` / ``pg_ctl`` run through ``runuser``
(when the tests run as root) or directly (when they run as ``postgres`` already). The
server listens on a free 127.0.0.1 port only, with ``fsync=off`` (nothing here needs to
survive a crash), trusts local connections, and ``remove()`` stops it and deletes the
folder. Debian's ``postgresql`` package provides the binaries (``make services`` installs
it); without them the tests fail, they do not skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import pytest

from processes import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
START_TIMEOUT = 30.0


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class PostgresServer:
    """One cluster: ``start()`` (initdb on the first call), ``stop()``, ``start()`` again
    on the same port and data, ``remove()`` at the end."""

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (BIN / tool).exists():
                pytest.fail(
                    f"{BIN / tool} is missing: run `make services` (or `apt-get install "
                    "postgresql`); the PostgreSQL tests need a real server and do not skip",
                    pytrace=False,
                )
        try:
            self._user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("there is no postgres user: install Debian's postgresql", pytrace=False)
        self.folder = Path(tempfile.mkdtemp(prefix="ferrosession-pg-"))
        os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
        self.data = self.folder / "data"
        self.port: Optional[int] = None
        self._initialised = False

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        done = subprocess.run(
            _as_postgres(list(args)), capture_output=True, timeout=timeout, cwd=self.folder
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({done.returncode}):\n"
                + done.stdout.decode(errors="replace")
                + done.stderr.decode(errors="replace")
                + self.log()
            )

    def start(self) -> PostgresServer:
        if not self._initialised:
            self._run(
                str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
            )  # fmt: skip
            self._initialised = True
        fixed = self.port is not None
        for _ in range(1 if fixed else 3):
            if not fixed:
                self.port = free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off "
                f"-c unix_socket_directories={self.folder} -c max_connections=100"
            )
            try:
                self._run(
                    str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path),
                    "-o", options, "-w", "-t", str(int(START_TIMEOUT)), "start",
                )  # fmt: skip
                return self
            except RuntimeError:
                if fixed:
                    raise
        raise RuntimeError(f"PostgreSQL did not start:\n{self.log()}")

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def stop(self) -> None:
        """Stops the server at once (``-m immediate``: open connections are cut, as in
        a crash), keeping its data and port for a later ``start()``."""
        if self.running():
            self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
