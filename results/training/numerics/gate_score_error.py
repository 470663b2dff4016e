"""A checkpoint (argv[1]): per gate, the largest compiled-vs-eager score difference (mask form) and the share of scores strictly between 0 and 1, first 200 held-out images."""
import torch, numpy as np
from lcnet_tvm.model.checkpoint import load_checkpoint, dataset_for
from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.model.gates import WithGateScores
import sys; l=load_checkpoint(sys.argv[1]); d=dataset_for(l); m=l.model.eval()
x=d.x_test[:200]
with torch.no_grad():
    ey, *es = WithGateScores(m)(x)
c=compile_model(m,(3,32,32),CompileOptions(gate_form="mask"),name=l.name)
r=c.run(x.numpy())
print("logit err", np.abs(r.logits-ey.numpy()).max())
for i,(a,b) in enumerate(zip(r.scores, es)):
    b=b.numpy(); diff=np.abs(a-b)
    frac=((b>0)&(b<1)).mean()
    print(i, a.shape, "max score diff %.2e"%diff.max(), "fraction soft (0<s<1) %.3f"%frac)
