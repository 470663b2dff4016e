"""From a PyTorch LC-Net to a compiled artifact: options, import into Relax, the compile driver."""
