"""A checkpoint (argv[1]): eager float32 against float64, eager under a 1e-6 relative input perturbation, and compiled (mask form, target argv[2]) against float64, first 300 held-out images."""
import torch, numpy as np, copy, sys
from lcnet_tvm.model.checkpoint import load_checkpoint, dataset_for
from lcnet_tvm import CompileOptions, compile_model
l=load_checkpoint(sys.argv[1]); d=dataset_for(l); m=l.model.eval()
x=d.x_test[:300]
with torch.no_grad():
    y64=copy.deepcopy(m).double()(x.double()).numpy(); y32=m(x).numpy()
    xp = x * (1 + 1e-6 * torch.randn_like(x)); yp = m(xp).numpy()
print("eager f32 vs f64", np.abs(y32-y64).max(), "eager under 1e-6 input noise", np.abs(yp-y32).max(), flush=True)
c=compile_model(m,(3,32,32),CompileOptions(gate_form="mask", target=sys.argv[2]),name=l.name)
r=c.run(x.numpy())
print(sys.argv[2], "compiled vs f64", np.abs(r.logits-y64).max(), flush=True)
