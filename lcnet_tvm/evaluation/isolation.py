"""Each benchmarked system in a worker process of its own, the processes taking turns.

In one process, four runtimes' thread pools (PyTorch's OpenMP, TVM's, ONNX Runtime's, OpenVINO's
TBB) share 2 cores and each call pays for the others' pools: ONNX Runtime's dense ResNet-56 read
6.3-6.6 ms there against 1.34 ms alone. A worker process holds one system and one runtime's pools;
the parent asks one worker at a time for a turn of calls, the others waiting on their pipes, and
starts the next turn only when the last worker's threads have stopped spinning, so a system's
timed calls share the machine with nothing else. Latencies are measured inside the worker, around
the call alone.

A *runner* is a picklable description of how to build the system in the worker: its ``build()``
returns a function from an input batch (numpy) to logits (numpy) and a dict of what the runtime
reports of itself (threads, version).
"""

from __future__ import annotations

import contextlib
import glob
import multiprocessing
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Protocol

import numpy as np
import psutil

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.evaluation.timing import take_turn

#: Seconds between checks that a worker still lives while waiting for its answer.
LIVENESS_POLL_S = 1.0


#: A worker is idle when its threads used at most this fraction of one core over a window this long.
IDLE_WINDOW_S = 0.010
IDLE_BUSY_FRACTION = 0.1
#: Longest wait for a worker to go idle after its turn (a runtime that never stops spinning).
IDLE_TIMEOUT_S = 1.0


def _cpu_seconds(pid: int) -> float:
    """CPU time all threads of process ``pid`` have used: the scheduler's nanosecond counts where
    Linux gives them (``/proc/PID/task/*/schedstat``), else psutil's (clock ticks: coarser)."""
    tasks = glob.glob(f"/proc/{pid}/task/*/schedstat")
    if not tasks:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    total = 0
    for path in tasks:
        with contextlib.suppress(OSError):  # a thread that ended since the listing
            with open(path) as stream:
                total += int(stream.read().split()[0])
    return total / 1e9


class Runner(Protocol):
    def build(self) -> tuple[Callable[[np.ndarray], np.ndarray], dict]: ...


def _serve(connection) -> None:
    """The worker's loop: build the system, then answer the parent's requests until told to stop."""
    try:
        sys_path, pickled_runner, batches = connection.recv()
        sys.path[:] = sys_path  # where the parent found the runner's class
        run, info = pickle.loads(pickled_runner).build()
        connection.send(("ready", info))
        while True:
            request, *arguments = connection.recv()
            if request == "close":
                return
            if request == "outputs":
                connection.send(("outputs", [np.array(run(batch)) for batch in batches]))
            elif request == "turn":
                index, settle, timed = arguments
                batch = batches[index % len(batches)]
                connection.send(("turn", take_turn(lambda: run(batch), settle, timed)))
    except (EOFError, KeyboardInterrupt):  # the parent went away or was interrupted: nothing to report to
        return
    except Exception as error:  # noqa: BLE001 (any failure of the system is reported to the parent as one line)
        first_line = str(error).splitlines()[0] if str(error) else ""
        connection.send(("error", f"{type(error).__name__}: {first_line}"))


class IsolatedSystem:
    """One system in a worker process: started at once, built there; :meth:`ready` waits for it.

    The worker is a fresh interpreter (``python -m lcnet_tvm.evaluation.isolation``), not a multiprocessing
    child: that would re-import the caller's main module, which a user's script may not guard.
    Its standard output goes to our standard error, so runtimes' messages never mix with a report.
    """

    def __init__(self, name: str, runner: Runner, batches: Sequence[np.ndarray]):
        self.name = name
        self._connection, child = multiprocessing.Pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(child.fileno())], pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno(),
        )
        child.close()
        self._connection.send((sys.path, pickle.dumps(runner), list(batches)))
        self._info: dict | None = None

    def ready(self) -> dict:
        """Wait until the worker has built its system; what the runtime reports of itself."""
        if self._info is None:
            self._info = self._answer("ready")
        return self._info

    def outputs(self) -> list[np.ndarray]:
        """The system's logits for every batch, once each (untimed)."""
        return self._request("outputs")

    def turn(self, index: int, settle: int, timed: int) -> list[float]:
        """``settle`` untimed calls, then ``timed`` timed ones, all on batch ``index``; their latencies in ms."""
        latencies = self._request("turn", index, settle, timed)
        self._wait_until_idle()
        return latencies

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._connection.send(("close",))
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._connection.close()

    def _wait_until_idle(self) -> None:
        """Return once the worker's threads have stopped using CPU time (a runtime's pool spins for a
        while after a call: ONNX Runtime's for about 40 ms on both cores here), so the next turn,
        another system's, does not share the cores with this one's spinning."""
        deadline = time.perf_counter() + IDLE_TIMEOUT_S
        used = _cpu_seconds(self._process.pid)
        while time.perf_counter() < deadline:
            time.sleep(IDLE_WINDOW_S)
            now = _cpu_seconds(self._process.pid)
            if now - used <= IDLE_BUSY_FRACTION * IDLE_WINDOW_S:
                return
            used = now

    def _request(self, request: str, *arguments):
        self.ready()
        try:
            self._connection.send((request, *arguments))
        except OSError:
            raise self._died() from None
        return self._answer(request)

    def _died(self) -> LcnetError:
        self._process.wait()
        return LcnetError(f"{self.name}'s worker process died (exit code {self._process.returncode})")

    def _answer(self, expected: str):
        while not self._connection.poll(LIVENESS_POLL_S):
            if self._process.poll() is not None:
                raise self._died()
        try:
            kind, payload = self._connection.recv()
        except (EOFError, OSError):
            raise self._died() from None
        if kind == "error":
            raise LcnetError(f"{self.name} failed in its worker process: {payload}")
        if kind != expected:
            raise LcnetError(f"{self.name}'s worker answered {kind!r} to a {expected!r} request")
        return payload


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
