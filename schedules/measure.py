"""How candidates are fed when they are measured."""

from __future__ import annotations

import numpy as np
import tvm


def _in_bounds_fill(random_fill):
    """A fill with random values for data, zeros for integer and boolean tensors.

    The gathered kernels read index tensors (``take`` of a gate's channel
    order, ``scatter_elements`` of its work flag): random integers would index
    out of bounds and crash the measurement. Zero is a valid index everywhere.
    """

    def fill(tensor: tvm.runtime.Tensor) -> None:
        if tvm.DataType(str(tensor.dtype)).type_code == tvm.DataTypeCode.FLOAT:
            random_fill(tensor)
        else:
            tensor.copyfrom(np.zeros(tensor.shape, dtype=str(tensor.dtype)))

    return fill


def alloc_in_bounds_arguments(device, args_info, alloc_repeat: int):
    """MetaSchedule's ``f_alloc_argument`` with index tensors kept in bounds (see :func:`_in_bounds_fill`)."""
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common  # noqa: PLC0415 (runs in a worker)

    fill = _in_bounds_fill(tvm.get_global_func("tvm.contrib.random.random_fill"))
    return alloc_argument_common(fill, device, args_info, alloc_repeat)


def alloc_in_bounds_arguments_remote(session, device, args_info, alloc_repeat: int):
    """The same for :class:`RPCRunner`: tensors on the remote device, filled by the device's own random fill."""
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common  # noqa: PLC0415 (runs in a worker)

    fill = _in_bounds_fill(session.get_function("tvm.contrib.random.random_fill_for_measure"))
    return alloc_argument_common(fill, device, args_info, alloc_repeat)
