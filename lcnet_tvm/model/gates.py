"""Reusable LC-Net gate modules, written in mask form so `torch.export` sees a static graph.

A gate reads the input of the unit it controls, global-average-pools it and maps
it with one linear layer to gate logits ``z``. The gate's *score* is
``clamp(z, 0, 1)``: one number per sample (layer gate) or per channel (channel
gate) that carries both the decision and the scale:

* ``score == 0`` (``z <= 0``): skip. The unit (block or channel) is not needed.
* ``score > 0``: keep, and multiply what the unit produces by ``score``.

This is the public reading of LC-Net's L-Net / C-Net (see ``README.md``).
In mask form the caller computes everything and multiplies by the score, so the
model runs in PyTorch and exports to one static graph; the compiler's passes
turn the multiplication by a hard 0/1 decision into skipped work.

Decisions at the threshold: eager PyTorch and the compiled code compute a
gate's logit with different summation orders, so a logit within float32
rounding of 0 may be kept by one and skipped by the other. Both apply the same
rule (keep iff score > 0), and the score is continuous there: the side that
keeps scales the unit by a score below :data:`THRESHOLD_ROUNDING`, so outputs
agree to that order either way. Comparisons (:mod:`lcnet_tvm.evaluation.verify`) count
such a pair as a tie, not a mismatch; logits are held to the same tolerance
(:attr:`~lcnet_tvm.evaluation.verify.EagerReference.tolerance`: 1e-4, or 4x eager's own float32
rounding, against float64 and against twins whose weights differ in their last bit, where that is larger).

Training uses a straight-through estimator: the forward value is the hard
inference score (so training sees the decisions inference makes; with
:func:`normalise_gate_logits`, up to the difference between a batch's logit
statistics and the running ones inference uses), the
backward pass treats ``clamp(z, 0, 1)`` as ``min(z, 1)``, so a closed gate
(``z <= 0``) still receives gradient and can reopen.

Each gate declares which sibling modules its decision controls (by attribute
name, relative to the module that owns the gate). The FLOPs accounting in
:mod:`lcnet_tvm.model.flops` reads these declarations; nothing else does.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import nn

#: A keep decision whose score is at most this is a tie at the threshold (float32 rounding of a logit).
THRESHOLD_ROUNDING = 1e-5

#: Initial bias of a gate's logits: gates start open (score 1) so that
#: training starts from the plain backbone and learns what to skip.
INITIAL_GATE_BIAS = 1.0


class _Gate(nn.Module):
    """Pool -> Linear -> clamp(0, 1); see the module docstring."""

    kind: str = ""

    def __init__(self, in_channels: int, out_features: int):
        super().__init__()
        if in_channels <= 0 or out_features <= 0:
            raise ValueError(
                f"{type(self).__name__} needs positive sizes, got in_channels={in_channels}, "
                f"out_features={out_features}"
            )
        self.fc = nn.Linear(in_channels, out_features)
        nn.init.normal_(self.fc.weight, std=in_channels**-0.5)
        nn.init.constant_(self.fc.bias, INITIAL_GATE_BIAS)
        #: Training only (see :func:`normalise_gate_logits`); inference models have none.
        self.norm: nn.BatchNorm1d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(x.mean(dim=(2, 3)))
        if self.norm is not None:
            logits = self.norm(logits)
        score = logits.clamp(0.0, 1.0)
        if self.training:
            # Forward value: the hard score. Backward: d score / d logits = 1 below 1.
            upper_clamped = logits.clamp(max=1.0)
            score = upper_clamped + (score - upper_clamped).detach()
        return score


class LayerGate(_Gate):
    """L-Net gate: per sample, keep or skip a residual branch and scale it.

    Returns scores of shape ``(N, 1)``. Use it as
    ``out = shortcut(x) + gate(x)[:, :, None, None] * branch(x)``.

    ``gated`` names the sibling modules (attributes of the gate's owner) that
    are not run when the gate skips, e.g. ``("conv1", "conv2")``.
    """

    kind = "layer"

    def __init__(self, in_channels: int, gated: tuple[str, ...]):
        super().__init__(in_channels, 1)
        self.gated = tuple(gated)


class ChannelGate(_Gate):
    """C-Net gate: per sample and channel, keep or skip an output channel of a conv.

    Returns scores of shape ``(N, channels)``. Use it as
    ``h = act(bn(producer(x))) * gate(x)[:, :, None, None]`` followed by the
    ``consumers``, which read ``h``: a skipped channel is neither produced by
    ``producer`` nor read by the consumers.
    """

    kind = "channel"

    def __init__(self, in_channels: int, channels: int, producer: str, consumers: tuple[str, ...]):
        super().__init__(in_channels, channels)
        self.producer = producer
        self.consumers = tuple(consumers)


def normalise_gate_logits(model: nn.Module) -> None:
    """Give every gate a batch norm on its logits, for training input-dependent decisions.

    Over a training batch each gate logit then has mean ``norm.bias`` and spread
    ``norm.weight``: whatever direction the gate's linear layer learns, it ranks
    the samples, and the samples above the threshold are kept. A gate cannot
    settle into one decision for every input by shrinking its weights (only by
    learning a large offset against a small spread, which the task loss has to
    argue for). The norm starts at offset :data:`INITIAL_GATE_BIAS`, spread 1:
    most samples kept. :func:`fold_gate_norms` removes it after training.
    """
    for _, gate in find_gates(model):
        gate.norm = nn.BatchNorm1d(gate.fc.out_features)
        nn.init.constant_(gate.norm.bias, INITIAL_GATE_BIAS)


@torch.no_grad()
def fold_gate_norms(model: nn.Module) -> None:
    """Fold each gate's batch norm (its running statistics) into its linear layer and remove it.

    In eval mode the folded gate computes the same logits; the model is the plain
    architecture again (what checkpoints store and the compiler reads).
    """
    for _, gate in find_gates(model):
        norm = gate.norm
        if norm is None:
            continue
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        gate.fc.weight.mul_(scale[:, None])
        gate.fc.bias.copy_((gate.fc.bias - norm.running_mean) * scale + norm.bias)
        gate.norm = None


def decisions(scores: torch.Tensor) -> torch.Tensor:
    """Hard keep decisions (bool) from gate scores: keep iff score > 0."""
    return scores > 0


@dataclass(frozen=True)
class GateInfo:
    """Where a gate sits in a model: its qualified name, kind and width."""

    name: str
    kind: str
    channels: int

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "channels": self.channels}


def find_gates(model: nn.Module) -> list[tuple[str, _Gate]]:
    """All gate modules of ``model`` in ``named_modules`` order (the order of gate outputs)."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, _Gate)]


def gate_infos(model: nn.Module) -> list[GateInfo]:
    return [GateInfo(name, gate.kind, gate.fc.out_features) for name, gate in find_gates(model)]


@contextlib.contextmanager
def record_gate_scores(model: nn.Module):
    """Collect each gate's scores during one forward pass, in ``find_gates`` order.

    Yields a list that holds, after the forward pass, one score tensor per gate.
    Every gate must run exactly once per forward pass (mask form).
    """
    gates = find_gates(model)
    slots: list[list[torch.Tensor]] = [[] for _ in gates]
    handles = [
        gate.register_forward_hook(lambda _m, _i, out, slot=slot: slot.append(out))
        for (_, gate), slot in zip(gates, slots)
    ]
    scores: list[torch.Tensor] = []
    try:
        yield scores
    finally:
        for handle in handles:
            handle.remove()
    for (name, _), slot in zip(gates, slots):
        if len(slot) != 1:
            raise RuntimeError(
                f"gate {name!r} ran {len(slot)} times in one forward pass; a mask-form model "
                "must run each gate exactly once"
            )
        scores.append(slot[0])


class WithGateScores(nn.Module):
    """Wraps a model so that its forward returns ``(logits, *gate_scores)``.

    This is what is exported and compiled: the gate networks run inside the
    compiled graph and their scores come back with the logits. It needs no
    knowledge of the wrapped architecture beyond its gate modules.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with record_gate_scores(self.model) as scores:
            logits = self.model(x)
        return (logits, *scores)


def without_gates(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its gate modules removed: the dense backbone, same weights.

    Each gate's attribute on its owner becomes ``None``; the owner's forward must
    then run its units ungated, as :class:`~lcnet_tvm.model.resnet.GatedBasicBlock` does.
    """
    dense = copy.deepcopy(model)
    for name, _ in find_gates(dense):
        owner, _, attribute = name.rpartition(".")
        setattr(dense.get_submodule(owner), attribute, None)
    return dense
