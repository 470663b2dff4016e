"""The PyTorch side: gate modules, the LC-ResNet zoo, FLOPs accounting, data, training, checkpoints (no TVM)."""
