"""Operating points for benchmarks: one threshold shift on every gate's logits.

A gate keeps a unit iff its logit ``z > 0`` (score ``clamp(z, 0, 1)``). Adding
the same constant ``shift`` to every gate's bias moves all thresholds at once:
a negative shift skips more. ``calibrate_gates`` finds, by bisection on
held-out inputs, the shift at which the decisions call for a target fraction
of the dense FLOPs (mean over the inputs), and applies it to the model's
weights, so eager and compiled models see the same gates. An untrained zoo
model's gates start open (bias 1): without a shift it runs nearly dense.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.evaluation.verify import eager_outputs
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import find_gates

logger = logging.getLogger(__name__)

#: Held-out samples an operating point is calibrated on: the data set's last ones (benchmarks time the first).
CALIBRATION_INPUTS = 64

#: Bisection bounds for the shift, in logit units (gate logits of trained and random models stay well inside).
SHIFT_RANGE = (-30.0, 30.0)
STEPS = 30


def calibration_inputs(data: torch.Tensor) -> torch.Tensor:
    """The held-out samples that ``tune --flops-fraction`` and ``bench --flops-fraction`` calibrate on."""
    if len(data) < CALIBRATION_INPUTS:
        raise LcnetError(f"calibrating gates needs {CALIBRATION_INPUTS} held-out samples, the data set has {len(data)}")
    return data[-CALIBRATION_INPUTS:]


def decided_fraction(model: nn.Module, inputs: torch.Tensor, counter: FlopsCounter) -> float:
    """Mean fraction of dense FLOPs that ``model``'s gate decisions call for on ``inputs``."""
    _, scores = eager_outputs(model, inputs)
    decided = counter.executed_flops([torch.from_numpy(score) > 0 for score in scores])
    return float(decided.mean()) / counter.dense_flops


def check_flops_fraction(flops_fraction: float) -> None:
    if not 0.0 < flops_fraction <= 1.0:
        raise LcnetError(f"FLOPs fraction must be in (0, 1], got {flops_fraction}")


@torch.no_grad()
def calibrate_gates(model: nn.Module, inputs: torch.Tensor, flops_fraction: float, counter: FlopsCounter) -> float:
    """Shift every gate bias so the decisions call for about ``flops_fraction`` of dense FLOPs; return the shift."""
    check_flops_fraction(flops_fraction)
    gates = [gate for _, gate in find_gates(model)]
    if not gates:
        raise LcnetError("the model has no gates to calibrate")
    original = [gate.fc.bias.clone() for gate in gates]

    def fraction_at(shift: float) -> float:
        for gate, bias in zip(gates, original):
            gate.fc.bias.copy_(bias + shift)
        return decided_fraction(model, inputs, counter)

    low, high = SHIFT_RANGE  # decided FLOPs grow with the shift
    if fraction_at(low) > flops_fraction:
        raise LcnetError(
            f"even with every gate shifted by {low} the decisions call for {fraction_at(low):.3f} of dense FLOPs "
            f"(ungated layers); ask for at least that, got {flops_fraction}"
        )
    highest = fraction_at(high)
    if highest < flops_fraction:
        logger.warning(
            "with every gate shifted by %+.0f the decisions call for %.3f of dense FLOPs, less than the %s asked "
            "for (gates that still skip on these inputs); using that shift", high, highest, flops_fraction,
        )
    for _ in range(STEPS):
        middle = (low + high) / 2
        if fraction_at(middle) > flops_fraction:
            high = middle
        else:
            low = middle
    fraction_at(low)  # the largest shift found at or below the target
    return low
