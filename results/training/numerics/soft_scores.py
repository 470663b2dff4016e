"""Per gate, the share of eager scores strictly between 0 and 1 on the first 300 held-out images of each checkpoint in argv."""
import sys

import torch

from lcnet_tvm.model.checkpoint import dataset_for, load_checkpoint
from lcnet_tvm.model.gates import WithGateScores

for path in sys.argv[1:]:
    loaded = load_checkpoint(path)
    with torch.no_grad():
        _, *scores = WithGateScores(loaded.model.eval())(dataset_for(loaded).x_test[:300])
    print(path, [round(float(((s > 0) & (s < 1)).float().mean()), 3) for s in scores])
