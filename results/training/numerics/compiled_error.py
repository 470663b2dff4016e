"""A checkpoint (argv[1]): compiled logits (mask and gated, the host's default target) against eager float32 and float64, on all held-out images."""
import torch, numpy as np, copy
from lcnet_tvm.model.checkpoint import load_checkpoint, dataset_for
from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.evaluation.verify import eager_outputs
import sys; l=load_checkpoint(sys.argv[1]); d=dataset_for(l); m=l.model.eval()
x=d.x_test
with torch.no_grad():
    y64=copy.deepcopy(m).double()(x.double()).numpy()
    y32=m(x).numpy()
for form in ("mask","gated"):
    c=compile_model(m,(3,32,32),CompileOptions(gate_form=form),name=l.name)
    r=c.run(x.numpy())
    e=np.abs(r.logits-y32).max(1); e64=np.abs(r.logits-y64).max(1)
    print(form, "vs f32 max", e.max(), "vs f64 max", e64.max(), "eager f32 vs f64", np.abs(y32-y64).max(), "worst img", e.argmax(), *(("level", d.test_difficulty.level[e.argmax()].item(), d.test_difficulty.corruption[e.argmax()]) if d.test_difficulty is not None else ()), flush=True)
