"""lcnet_tvm: compile dynamic-inference CNNs (LC-Net) with TVM Relax."""

__version__ = "0.1.0"
