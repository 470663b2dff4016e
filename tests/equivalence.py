"""Shared checks: compiled equals eager, and the compiled code reports the work the documented semantics call for."""

from __future__ import annotations

import numpy as np
import torch

from lcnet_tvm.compiler.gate_forms import channel_buckets
from lcnet_tvm.evaluation.verify import LOGIT_TOLERANCE, compare_with_eager
from lcnet_tvm.model.flops import FlopsCounter


def expected_computed(decisions: list[np.ndarray], metadata: dict) -> list[np.ndarray]:
    """Per gate and sample, what the compiled code must have computed, by the documented semantics.

    Per compiled batch: a lowered layer gate's branch runs iff any sample keeps it;
    a lowered channel gate computes the union of the kept channels, padded with the
    lowest-numbered other channels up to the smallest bucket that holds them (none
    if nothing is kept, or if a lowered layer gate around it skipped); gates in
    mask form compute everything.
    """
    if not decisions:  # a model without gates
        return []
    batch = metadata.input_shape[0]
    gates = metadata.gates
    counter = FlopsCounter.from_json(metadata.flops)
    enclosing = {op.output_gate: op.layer_gates for op in counter.ops if op.output_gate is not None}
    count = len(decisions[0])
    expected = [np.ones_like(keep) for keep in decisions]
    for start in range(0, count, batch):
        chunk = slice(start, start + batch)
        union = [keep[chunk].any(axis=0) for keep in decisions]
        for index in sorted(range(len(gates)), key=lambda i: gates[i].kind != "layer"):  # layer gates first
            gate = gates[index]
            if not gate.lowered:
                continue
            computed = union[index].copy()
            if gate.kind == "channel":
                around = [expected[layer][start, 0] for layer in enclosing.get(index, ()) if gates[layer].lowered]
                kept = int(computed.sum())
                if kept == 0 or not all(around):
                    computed[:] = False
                else:
                    size = min(size for size in channel_buckets(gate.channels, metadata.channel_buckets) if size >= kept)
                    computed[np.flatnonzero(~computed)[: size - kept]] = True
            expected[index][chunk] = computed
    return expected


def check_against_eager(compiled, model, x: torch.Tensor, varying: bool = True, tolerance: float = LOGIT_TOLERANCE):
    """Compiled logits within ``tolerance`` of eager, identical decisions, honest work flags. Returns the result."""
    result, agreement = compare_with_eager(compiled, model, x)
    assert agreement.max_abs_error <= tolerance, agreement
    assert agreement.gate_agreement == 1.0, agreement
    for computed, expected in zip(result.computed, expected_computed(result.decisions, compiled.metadata)):
        np.testing.assert_array_equal(computed, expected)
    assert np.all(result.executed_flops >= result.decided_flops - 1e-3 * compiled.dense_flops)
    everything = compiled.dense_flops + FlopsCounter.from_json(compiled.metadata.flops).gate_network_flops
    assert np.all(result.executed_flops <= everything * 1.0001)
    if varying:  # the comparison means something only if gates really vary with the input
        kept = np.concatenate([d.reshape(len(x), -1) for d in result.decisions], axis=1)
        assert 0.1 < kept.mean() < 0.9
        assert len({row.tobytes() for row in kept}) >= min(10, len(x) // 2)
    return result
