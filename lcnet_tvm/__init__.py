"""lcnet_tvm: compile dynamic-inference CNNs (LC-Net) with TVM Relax."""

import os

__version__ = "0.1.0"

# TVM's CPU thread pool reads TVM_NUM_THREADS when a thread first runs a kernel. Unset, it takes
# half the logical CPUs (it assumes hyper-threading): one thread on a 2-CPU machine, where the
# gated ResNet-20 then ran 2.3x slower (1.7 vs 0.74 ms) than with two. Use every CPU this process
# may run on, unless the user chose; set before any TVM code runs (tuning's measuring workers
# inherit it).
os.environ.setdefault(
    "TVM_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
)
