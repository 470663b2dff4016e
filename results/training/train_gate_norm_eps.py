"""Experiment: lcnet-tvm train with the gates' batch-norm epsilon set to argv[1] (default 1e-5), either one value
for every gate or LAYER:CHANNEL (one for the layer gates, one for the channel gates); argv[2:] is the CLI."""
import sys

import lcnet_tvm.model.gates as gates
import lcnet_tvm.model.train as train
from lcnet_tvm.cli import main

layer_eps, _, channel_eps = sys.argv[1].partition(":")
eps = {"layer": float(layer_eps), "channel": float(channel_eps or layer_eps)}
original = gates.normalise_gate_logits


def normalise(model):
    original(model)
    for _, gate in gates.find_gates(model):
        gate.norm.eps = eps[gate.kind]


train.normalise_gate_logits = normalise
main(sys.argv[2:])
