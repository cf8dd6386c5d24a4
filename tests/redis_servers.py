"""Real ``redis-server`` processes for the tests: one node, or a 3-node cluster.

Each server listens on a free 127.0.0.1 port, keeps its files in its own temp folder and
is stopped (terminate, then wait) by ``stop()``. ``redis-server`` comes from Debian's
package (``make test`` installs it when missing); without it the tests fail, they do not
skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

from processes import free_port as free_port  # the tests import it from here
from processes import terminate

START_TIMEOUT = 10.0


def require(program: str) -> str:
    """The path of ``program``, or a test failure that says how to get it."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(
            f"{program} is not installed: run `make services` (or `apt-get install "
            f"redis-server`); the Redis tests need a real server and do not skip",
            pytrace=False,
        )
    return path


def command(port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Sends one command with a bare socket (RESP) and returns the raw reply."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        if reply.startswith(b"$"):  # a bulk string: read up to its announced length
            size = int(reply[1 : reply.index(b"\r\n")])
            want = reply.index(b"\r\n") + 2 + size + 2
            while size >= 0 and len(reply) < want:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply


class RedisServer:
    """One ``redis-server`` on 127.0.0.1.

    Args:
        folder: its working folder (logs, ``nodes.conf``, ``dump.rdb``).
        port: a fixed port (a restart on the same port), or ``None`` for a free one.
        cluster: start it with ``--cluster-enabled yes``.
        persistent: keep an RDB snapshot, written on shutdown and loaded on start, so a
            stop and a restart on the same port keep the data.
    """

    def __init__(
        self,
        folder: Path,
        *,
        port: Optional[int] = None,
        cluster: bool = False,
        persistent: bool = False,
    ) -> None:
        self.folder = folder
        self.port = port
        self.cluster = cluster
        self.persistent = persistent
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.folder / f"redis-{self.port}.log"

    def start(self) -> RedisServer:
        """Starts the server and waits until it answers PING (a free port is retried)."""
        binary = require("redis-server")
        self.folder.mkdir(parents=True, exist_ok=True)
        fixed = self.port is not None
        for _ in range(1 if fixed else 3):
            if not fixed:
                self.port = free_port()
            args = [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--logfile", str(self.log_path),
                "--appendonly", "no",
                "--daemonize", "no",
            ]  # fmt: skip
            if self.persistent:
                args += ["--save", "3600 1", "--dbfilename", "dump.rdb"]
                args += ["--shutdown-on-sigterm", "save"]
            else:
                args += ["--save", ""]
            if self.cluster:
                args += [
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000",
                    "--cluster-port", str(free_port()),
                ]  # fmt: skip
            self.proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder
            )
            if self._wait_for_ping():
                return self
            self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log()}")

    def _wait_for_ping(self) -> bool:
        assert self.proc is not None and self.port is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if command(self.port, "PING", timeout=0.5).startswith(b"+PONG"):
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, but nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Terminates the server and waits for it (idempotent). A persistent server saves
        its snapshot first (SIGTERM with ``shutdown-on-sigterm save``)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if self.paused:
            self.resume()
        terminate(proc, grace=10)


class RedisClusterNodes:
    """Three cluster-enabled servers joined with ``redis-cli --cluster create`` (no
    replicas), ready once every node reports ``cluster_state:ok``."""

    def __init__(self, folder: Path) -> None:
        self.nodes = [RedisServer(folder / f"node{i}", cluster=True) for i in range(3)]

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes if n.port is not None]

    def start(self) -> RedisClusterNodes:
        cli = require("redis-cli")
        try:
            for node in self.nodes:
                node.start()
            hosts = [f"127.0.0.1:{p}" for p in self.ports]
            create = [cli, "--cluster", "create", *hosts, "--cluster-replicas", "0"]
            created = subprocess.run([*create, "--cluster-yes"], capture_output=True, timeout=30)
            if created.returncode != 0:
                raise RuntimeError(
                    "redis-cli --cluster create failed:\n"
                    + created.stdout.decode(errors="replace")
                    + created.stderr.decode(errors="replace")
                )
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                states = [command(p, "CLUSTER", "INFO") for p in self.ports]
                if all(b"cluster_state:ok" in s for s in states):
                    return self
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not reach cluster_state:ok: {states}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
