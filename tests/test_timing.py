"""measure_interleaved: who is called when, and how many timed samples each system gets (no timings asserted)."""

import pytest

from lcnet_tvm.evaluation.timing import SETTLE_CALLS, TIMED_CALLS, in_process, measure_interleaved, timed_rounds


@pytest.mark.parametrize("iterations", [1, TIMED_CALLS, TIMED_CALLS + 1, 3 * TIMED_CALLS - 1])
def test_systems_take_turns_and_each_gets_exactly_the_timed_calls_asked(iterations):
    calls = []
    rounds = []
    systems = {name: in_process(lambda name=name: calls.append(name)) for name in ("a", "b")}
    latency = measure_interleaved(systems, iterations, warmup=2, after_round=lambda: rounds.append(len(calls)))

    assert len(rounds) == 2 + timed_rounds(iterations)
    assert calls[: rounds[1]] == ["a", "b", "a", "b"]  # warm-up: one call each per round
    timed = calls[rounds[1] :]
    assert timed.count("a") == timed.count("b") == iterations + SETTLE_CALLS * timed_rounds(iterations)
    first_turn = min(iterations, TIMED_CALLS) + SETTLE_CALLS
    assert timed[: 2 * first_turn] == ["a"] * first_turn + ["b"] * first_turn
    for row in latency.values():
        assert row["iterations"] == iterations and 0 <= row["median_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["rounds"] == timed_rounds(iterations) and row["round_median_q25_ms"] <= row["round_median_q75_ms"]
