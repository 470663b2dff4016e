"""FLOPs accounting, the one place that counts dense and executed FLOPs.

A FLOP here is one multiply or one add of a convolution or linear layer
(2 x multiply-accumulates); batch norm, activations, pooling and residual adds
are left out (under 2% of a ResNet's work). Costs are per sample.

*Dense* FLOPs are those of the backbone with every block and channel computed
and without the gate networks. *Executed* FLOPs for a sample are what a
gate-skipping executor must compute given that sample's gate decisions: an op
inside a skipped block costs nothing, a conv producing (or reading) channels
selected by a channel gate costs its dense FLOPs times the fraction of channels
kept, and the gate networks themselves are always paid for.

Which ops a gate controls comes from the gates' own declarations
(:class:`~lcnet_tvm.model.gates.LayerGate` ``gated``, :class:`~lcnet_tvm.model.gates.ChannelGate`
``producer``/``consumers``), so any model built from the gate modules is counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lcnet_tvm.model.gates import ChannelGate, LayerGate, find_gates


@dataclass(frozen=True)
class OpCost:
    """Dense per-sample FLOPs of one conv/linear module and the gates that cut them."""

    name: str
    dense_flops: int
    is_gate_network: bool
    layer_gates: tuple[int, ...] = ()
    output_gate: int | None = None
    input_gate: int | None = None


def _op_flops(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kernel = math.prod(module.kernel_size) * module.in_channels // module.groups
        return 2 * kernel * output[0].numel()
    return 2 * module.in_features * module.out_features


def _trace_op_flops(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """Dense FLOPs of each Conv2d/Linear module for one sample, by running it once."""
    flops: dict[str, int] = {}
    handles = [
        module.register_forward_hook(lambda m, _i, out, name=name: flops.__setitem__(name, _op_flops(m, out)))
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return flops


class FlopsCounter:
    """Dense and executed FLOPs of a model built from the gate modules."""

    def __init__(self, ops: list[OpCost], num_gates: int):
        self.ops = ops
        self.num_gates = num_gates
        self.dense_flops = sum(op.dense_flops for op in ops if not op.is_gate_network)
        self.gate_network_flops = sum(op.dense_flops for op in ops if op.is_gate_network)

    @classmethod
    def from_model(cls, model: nn.Module, input_shape: Sequence[int]) -> FlopsCounter:
        """Count ``model`` for samples of ``input_shape`` (C, H, W)."""
        flops = _trace_op_flops(model, input_shape)
        gates = find_gates(model)
        gate_networks = {name for gate_name, _ in gates for name in flops if name.startswith(gate_name + ".")}
        layer_gates: dict[str, list[int]] = {name: [] for name in flops}
        output_gate: dict[str, int] = {}
        input_gate: dict[str, int] = {}

        def controlled(gate_name: str, relative: str) -> list[str]:
            owner = gate_name.rpartition(".")[0]
            target = f"{owner}.{relative}" if owner else relative
            names = [name for name in flops if name == target or name.startswith(target + ".")]
            if not names:
                raise ValueError(
                    f"gate {gate_name!r} declares {relative!r}, but {target!r} holds no Conv2d/Linear "
                    "that ran; fix the gate's declaration"
                )
            return names

        def assign(table: dict[str, int], names: list[str], index: int, gate_name: str, role: str) -> None:
            for name in names:
                if name in table:
                    raise ValueError(f"{name!r} is the {role} of two channel gates (the second is {gate_name!r})")
                table[name] = index

        for index, (gate_name, gate) in enumerate(gates):
            if isinstance(gate, LayerGate):
                for relative in gate.gated:
                    for name in controlled(gate_name, relative):
                        layer_gates[name].append(index)
            elif isinstance(gate, ChannelGate):
                assign(output_gate, controlled(gate_name, gate.producer), index, gate_name, "producer")
                for relative in gate.consumers:
                    assign(input_gate, controlled(gate_name, relative), index, gate_name, "consumer")
        ops = [
            OpCost(
                name,
                dense,
                name in gate_networks,
                tuple(layer_gates[name]),
                output_gate.get(name),
                input_gate.get(name),
            )
            for name, dense in flops.items()
        ]
        return cls(ops, len(gates))

    def to_json(self) -> dict:
        ops = [{**dataclasses.asdict(op), "layer_gates": list(op.layer_gates)} for op in self.ops]  # as JSON reads back
        return {"ops": ops, "num_gates": self.num_gates}

    @classmethod
    def from_json(cls, data: dict) -> FlopsCounter:
        ops = [OpCost(**{**op, "layer_gates": tuple(op["layer_gates"])}) for op in data["ops"]]
        return cls(ops, data["num_gates"])

    def executed_flops(self, keeps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-sample executed FLOPs, shape ``(N,)``.

        ``keeps`` holds, per gate (in :func:`~lcnet_tvm.model.gates.find_gates` order),
        the keep decisions of shape ``(N, 1)`` or ``(N, C)``: bool, or float in
        [0, 1] (a differentiable surrogate during training).
        """
        if len(keeps) != self.num_gates:
            raise ValueError(f"expected keep decisions for {self.num_gates} gates, got {len(keeps)}")
        kept_fraction = [keep.float().mean(dim=1) for keep in keeps]
        total = torch.zeros_like(kept_fraction[0]) if kept_fraction else torch.zeros(1)
        for op in self.ops:
            factor = torch.ones_like(total)
            for index in op.layer_gates:
                factor = factor * kept_fraction[index]
            for index in (op.output_gate, op.input_gate):
                if index is not None:
                    factor = factor * kept_fraction[index]
            total = total + op.dense_flops * factor
        return total
