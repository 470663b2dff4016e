"""PyTorch -> Relax: ``torch.export`` of a gated model, then TVM's exported-program importer."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import torch
import tvm
from torch import nn
from tvm.relax.frontend import detach_params
from tvm.relax.frontend.torch import from_exported_program

from lcnet_tvm.model.gates import GateInfo, WithGateScores, gate_infos
from lcnet_tvm.passes.gate_regions import GATE_KINDS_ATTR

logger = logging.getLogger(__name__)


@dataclass
class ImportedModel:
    """A Relax module ``main(x, *weights) -> (logits, *gate_scores)`` with its weights kept apart."""

    mod: tvm.IRModule
    params: dict[str, tvm.runtime.Tensor]
    gates: list[GateInfo]
    input_shape: tuple[int, int, int, int]


def import_model(model: nn.Module, input_shape: tuple[int, int, int, int]) -> ImportedModel:
    """Import ``model`` (any ``nn.Module`` built with the gate modules) for inputs of ``input_shape`` (NCHW).

    The model is exported in eval mode with a static batch size. Gate scores are
    extra outputs, in :func:`~lcnet_tvm.model.gates.find_gates` order.
    """
    was_training = model.training
    model.eval()
    try:
        example = torch.zeros(input_shape, dtype=torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation noise
            exported = torch.export.export(WithGateScores(model), (example,))
            mod = from_exported_program(exported, keep_params_as_input=True)
    finally:
        model.train(was_training)
    mod, params = detach_params(mod)
    gates = gate_infos(model)
    mod["main"] = mod["main"].with_attr(GATE_KINDS_ATTR, [gate.kind for gate in gates])
    names = [param.name for param in mod["main"].params[1:]]
    weights = dict(zip(names, params.get("main", [])))
    logger.info("imported %d weights and %d gates", len(weights), len(gates))
    return ImportedModel(mod, weights, gates, tuple(input_shape))
