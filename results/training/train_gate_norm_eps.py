"""Experiment: lcnet-tvm train with the gates' batch-norm epsilon set to argv[1] (default 1e-5); argv[2:] is the CLI."""
import sys
import lcnet_tvm.model.gates as gates
eps = float(sys.argv[1])
original = gates.normalise_gate_logits
def normalise(model):
    original(model)
    for _, gate in gates.find_gates(model):
        gate.norm.eps = eps
import lcnet_tvm.model.train as train
train.normalise_gate_logits = normalise
from lcnet_tvm.cli import main
main(sys.argv[2:])
