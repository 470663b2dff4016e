"""TVM RPC devices on loopback for tests: TVM's own tracker and servers, started as subprocesses."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lcnet_tvm.targets.remote import RemoteDevice
from tvm import rpc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _wait(ready, processes: list[subprocess.Popen], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"an RPC process exited with {process.returncode}: {process.args}")
        with contextlib.suppress(Exception):  # not listening yet
            if ready():
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not start in {timeout} s")


def _free_servers(port: int, key: str) -> int:
    return rpc.connect_tracker("127.0.0.1", port).summary()["queue_info"].get(key, {}).get("free", 0)


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@dataclass
class LoopbackDevices:
    #: The tracker, handing out the servers registered under its key.
    tracker: RemoteDevice
    #: A standalone server (no tracker, no key), reached directly.
    server: RemoteDevice
    #: The tracker's servers' logs.
    logs: list[Path]

    def sessions_served(self) -> list[int]:
        """RPC sessions each of the tracker's servers says it served."""
        return [log.read_text().count("connected from") for log in self.logs]


def _server_command(python: str, port: int, *registration: str) -> list[str]:
    return [python, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
            "--port-end", str(port + 1), *registration]


@contextlib.contextmanager
def rpc_devices(log_dir: Path, key: str, servers: list[str], timeout: float = 60.0, start_timeout: float = 120.0):
    """On loopback: a tracker with one RPC server per Python interpreter in ``servers``, registered
    under ``key``, and one standalone server run by ``servers[0]``.

    Yields :class:`LoopbackDevices`; tracker server ``i`` logs to ``log_dir/server{i}.log``.
    """
    tracker_port, standalone_port = free_port(), free_port()
    tracker_command = [sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port",
                       str(tracker_port), "--port-end", str(tracker_port + 1)]
    processes = [_start(tracker_command, log_dir / "tracker.log")]
    try:
        # Servers retry a tracker that is not up yet only every 5 s: start them once it listens.
        _wait(lambda: _listening(tracker_port), processes, start_timeout, "the RPC tracker")
        logs = [log_dir / f"server{index}.log" for index in range(len(servers))]
        for python, log in zip(servers, logs):
            command = _server_command(python, free_port(), "--tracker", f"127.0.0.1:{tracker_port}", "--key", key)
            processes.append(_start(command, log))
        processes.append(_start(_server_command(servers[0], standalone_port), log_dir / "standalone.log"))
        _wait(lambda: _free_servers(tracker_port, key) >= len(servers), processes, start_timeout, f"{len(servers)} servers")
        _wait(lambda: _listening(standalone_port), processes, start_timeout, "the standalone server")
        yield LoopbackDevices(
            RemoteDevice("127.0.0.1", tracker_port, key, timeout), RemoteDevice("127.0.0.1", standalone_port, None, timeout),
            logs,
        )
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()
