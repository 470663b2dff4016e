"""Systems in worker processes of their own: turns, outputs, and failures reported as one line (no timings asserted)."""

import os
import signal
from dataclasses import dataclass

import numpy as np
import pytest

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.evaluation.isolation import IsolatedSystem

BATCHES = [np.full((1, 3), float(index), dtype=np.float32) for index in range(3)]


@dataclass(frozen=True)
class Doubling:
    """A system whose "logits" are twice its input; reports the process it runs in."""

    fail: bool = False

    def build(self):
        if self.fail:
            raise RuntimeError("no such device\nsecond line")
        return (lambda batch: batch * 2), {"pid": os.getpid()}


def test_a_system_runs_in_a_process_of_its_own():
    system = IsolatedSystem("doubling", Doubling(), BATCHES)
    try:
        assert system.ready()["pid"] != os.getpid()
        for output, batch in zip(system.outputs(), BATCHES, strict=True):
            np.testing.assert_array_equal(output, batch * 2)
        latencies = system.turn(index=4, settle=2, timed=3)
        assert len(latencies) == 3 and all(latency >= 0 for latency in latencies)
        assert system.turn(index=0, settle=1, timed=0) == []
    finally:
        system.close()


def test_a_system_that_fails_to_build_is_one_line_naming_it():
    system = IsolatedSystem("broken", Doubling(fail=True), BATCHES)
    try:
        with pytest.raises(LcnetError, match=r"^broken failed in its worker process: RuntimeError: no such device$"):
            system.ready()
    finally:
        system.close()


def test_a_worker_that_dies_is_reported():
    system = IsolatedSystem("doomed", Doubling(), BATCHES)
    try:
        os.kill(system.ready()["pid"], signal.SIGKILL)
        with pytest.raises(LcnetError, match="doomed's worker process died"):
            system.turn(index=0, settle=0, timed=1)
    finally:
        system.close()
