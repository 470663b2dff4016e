"""The untrained LC-ResNet-56 with its gates calibrated to half the FLOPs, as `lcnet-tvm bench --flops-fraction 0.5` does:
what the float32-rounding scripts in this folder's subfolders start from (import it with
``sys.path.insert(0, <this folder>)``)."""
import copy

import torch

from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs
from lcnet_tvm.model.checkpoint import dataset_for, resolve_model
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import WithGateScores


def half_flops_r56():
    """(the calibrated model, the held-out images, the gate shift); torch on 2 threads, as the bench's workers."""
    torch.set_num_threads(2)
    loaded = resolve_model("lcnet_resnet56_cifar")
    data = dataset_for(loaded).x_test
    model = copy.deepcopy(loaded.model).eval()
    counter = FlopsCounter.from_model(model, loaded.config.input_shape)
    shift = calibrate_gates(model, calibration_inputs(data), 0.5, counter)
    return model, data, shift


def with_scores(model, dtype=torch.float32):
    """``model`` (a copy of it in ``dtype``) returning its logits and gate scores."""
    return WithGateScores(copy.deepcopy(model).to(dtype)).eval()
