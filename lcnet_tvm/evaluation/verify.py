"""Compiled-vs-eager agreement: logits, gate decisions, predictions."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from lcnet_tvm.model.gates import THRESHOLD_ROUNDING, WithGateScores
from lcnet_tvm.runtime.compiled_model import CompiledModel, RunResult

#: How far a system's logits may be from eager PyTorch's, scaled (see :func:`scaled_error`).
LOGIT_TOLERANCE = 1e-4

#: Where float32 rounding alone moves eager's logits more than :data:`LOGIT_TOLERANCE` (deep untrained
#: ResNets, whose activations grow block by block), a system may be this many times as far from eager as
#: float32 rounding moves eager (:attr:`EagerReference.rounding`): another exact order rounds about as much
#: again, on each side.
ROUNDING_ALLOWANCE = 4

#: Twins of the model whose float32 weights are each one unit in the last place up or down (at random, seeded)
#: measure how much float32's representation of the weights alone moves the logits. Any float32 computation of
#: the model rounds its products and sums at least that much; on the bench's untrained ResNet-56 this moves
#: eager's logits several times more than eager's arithmetic does (against float64).
WEIGHT_ULP_TWINS = 8


def scaled_error(logits: np.ndarray, reference: np.ndarray) -> float:
    """max |logits - reference| / max(1, |reference|): absolute for small logits, relative for large ones."""
    return float((np.abs(logits - reference) / np.maximum(1.0, np.abs(reference))).max())


@dataclass
class Agreement:
    samples: int
    max_abs_error: float
    #: :func:`scaled_error` of compiled against eager logits.
    max_scaled_error: float
    #: fraction of gate decisions (samples x gates x channels) that agree between eager and compiled:
    #: equal, or at the threshold (see :data:`~lcnet_tvm.model.gates.THRESHOLD_ROUNDING`).
    gate_agreement: float
    #: decisions that differ at the threshold: the keeping side's score is within rounding of 0.
    threshold_ties: int
    prediction_agreement: float

    def to_json(self) -> dict:
        return asdict(self)


#: Eager reference runs take the held-out images in batches of this many.
EAGER_BATCH = 256


def in_batches(x, size: int = EAGER_BATCH) -> list:
    """``x`` (array or tensor) cut into consecutive batches of ``size`` samples (the last one shorter)."""
    return [x[start : start + size] for start in range(0, len(x), size)]


@torch.no_grad()
def eager_outputs(model: nn.Module, x: torch.Tensor, batch_size: int = EAGER_BATCH) -> tuple[np.ndarray, list[np.ndarray]]:
    """PyTorch eager logits and gate scores, the reference every compiled result is held to."""
    wrapped = WithGateScores(model).eval()
    parts = [[t.numpy() for t in wrapped(batch)] for batch in in_batches(x, batch_size)]
    logits, *scores = (np.concatenate(chunk) for chunk in zip(*parts))
    return logits, scores


@dataclass(frozen=True)
class EagerReference:
    """Eager float32 logits per batch, and how far float32 rounding alone moves them."""

    logits: list[np.ndarray]
    #: max :func:`scaled_error` of these logits against a float64 run of the same model and against its
    #: :data:`WEIGHT_ULP_TWINS`, over the batches where the other run takes the same gate decisions (elsewhere it
    #: computes another function).
    rounding: float

    @property
    def tolerance(self) -> float:
        return max(LOGIT_TOLERANCE, ROUNDING_ALLOWANCE * self.rounding)


def weight_ulp_twin(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """A copy of the float32 ``model`` with each weight one unit in the last place up or down, at random."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in twin.parameters():
            upward = torch.randint(0, 2, parameter.shape, generator=generator, dtype=torch.bool)
            parameter.copy_(torch.nextafter(parameter, torch.where(upward, torch.inf, -torch.inf)))
    return twin


@torch.inference_mode()
def eager_reference(model: nn.Module, batches: list[np.ndarray], twins: int = WEIGHT_ULP_TWINS) -> EagerReference:
    """``model``'s eager logits on each batch, with their float32 rounding measured against float64 and ``twins``
    weight-ulp twins."""
    generator = torch.Generator().manual_seed(0)
    single = WithGateScores(model).eval()
    others = [WithGateScores(copy.deepcopy(model).double()).eval()]
    others += [WithGateScores(weight_ulp_twin(model, generator)).eval() for _ in range(twins)]
    logits, rounding = [], 0.0
    for batch in batches:
        reference, *scores = (t.numpy() for t in single(torch.from_numpy(batch)))
        logits.append(reference)
        for other in others:
            dtype = next(other.parameters()).dtype
            other_logits, *other_scores = (t.numpy() for t in other(torch.from_numpy(batch).to(dtype)))
            if all(np.array_equal(a > 0, b > 0) for a, b in zip(scores, other_scores)):
                rounding = max(rounding, scaled_error(reference, other_logits))
    return EagerReference(logits, rounding)


def agreement(result: RunResult, logits: np.ndarray, scores: list[np.ndarray]) -> Agreement:
    difference = np.abs(result.logits - logits)
    differ = [(a > 0) != (b > 0) for a, b in zip(result.scores, scores)]
    ties = sum(int((d & (np.maximum(a, b) <= THRESHOLD_ROUNDING)).sum()) for d, a, b in zip(differ, result.scores, scores))
    agree = sum(int((~d).sum()) for d in differ) + ties
    total = sum(b.size for b in scores)
    return Agreement(
        samples=len(logits),
        max_abs_error=float(difference.max()),
        max_scaled_error=scaled_error(result.logits, logits),
        gate_agreement=agree / total if total else 1.0,
        threshold_ties=ties,
        prediction_agreement=float((result.predictions == logits.argmax(1)).mean()),
    )


def compare_with_eager(compiled: CompiledModel, model: nn.Module, x: torch.Tensor) -> tuple[RunResult, Agreement]:
    """Run ``x`` through both and measure how far apart they are."""
    result = compiled.run(x)
    return result, agreement(result, *eager_outputs(model, x))
