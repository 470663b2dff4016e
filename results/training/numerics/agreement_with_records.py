"""A checkpoint (argv[1]): the compiled gated model with the shipped records for this host against eager on all
held-out images, beside eager's own float32 rounding (scaled as the bench and the demo scale it)."""
import sys

import numpy as np

from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.evaluation.verify import eager_reference, scaled_error
from lcnet_tvm.model.checkpoint import dataset_for, load_checkpoint
from lcnet_tvm.schedules.shipped import shipped_records

loaded = load_checkpoint(sys.argv[1])
x = dataset_for(loaded).x_test.numpy()
reference = eager_reference(loaded.model, [x])
eager = reference.logits[0]
target, records = shipped_records(loaded.name)
compiled = compile_model(loaded.model, loaded.config.input_shape, CompileOptions(target=target, database=records))
logits = compiled.run(x).logits
print(f"{target}, {compiled.tuning.tuned} of {compiled.tuning.kernels} kernels tuned: compiled vs eager max abs "
      f"{np.abs(logits - eager).max():.3g}, scaled {scaled_error(logits, eager):.3g}; eager's float32 rounding (scaled) "
      f"{reference.rounding:.3g}, allowance {reference.tolerance:.3g}")
