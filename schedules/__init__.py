"""Kernel tuning with MetaSchedule and its XGBoost cost model.

* :mod:`.tune`: from a model to tuned records: its kernels as tasks, the trial
  budget spread by expected runtime share (or by calls observed on held-out
  inputs), MetaSchedule's search per task, Ctrl-C safe;
* :mod:`.seeding`: a kernel's search started from the refitted best schedules
  of tuned kernels of its form (a channel bucket from the full convolution);
* :mod:`.database`: a tuning database on disk, for one target;
* :mod:`.builder`, :mod:`.measure`: how candidates are built here and where
  and how they are measured (this machine or an RPC tracker's devices);
* :mod:`.shipped`: the records shipped with the package.
"""
