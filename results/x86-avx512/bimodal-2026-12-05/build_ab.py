"""Compile LC-ResNet-56 at 0.5 of its FLOPs (gated and dense) and LC-ResNet-18 at 0.5 (gated) with the shipped records."""
import copy, sys, torch
from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs
from lcnet_tvm.model.checkpoint import dataset_for, resolve_model
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.schedules.shipped import target_and_records
out = sys.argv[1]
for name in ("lcnet_resnet56_cifar", "lcnet_resnet18_imagenet"):
    loaded = resolve_model(name)
    data = dataset_for(loaded).x_test
    model = copy.deepcopy(loaded.model).eval()
    calibrate_gates(model, calibration_inputs(data), 0.5, FlopsCounter.from_model(model, loaded.config.input_shape))
    target, records = target_and_records(name, "x86")
    for form in ("gated",) if "18" in name else ("gated", "dense"):
        options = CompileOptions().replace(target=target, database=records, gate_form=form)
        compile_model(model, loaded.config.input_shape, options, name=name).save(f"{out}/{name}_{form}")
    torch.save(data[:8], f"{out}/{name}_inputs.pt")
