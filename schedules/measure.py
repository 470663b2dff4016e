"""Where candidates are measured (this machine, or the devices behind an RPC tracker) and how they are fed."""

from __future__ import annotations

import numpy as np
import tvm
from lcnet_tvm.targets import TargetSpec
from lcnet_tvm.targets.remote import RemoteDevice
from tvm.s_tir import meta_schedule as ms

from lcnet_tvm.errors import TargetError

#: Seconds one candidate's measurement may take on this machine.
LOCAL_TIMEOUT_S = 30.0


def tuning_runner(spec: TargetSpec, config: dict, remote: RemoteDevice | None = None) -> ms.runner.Runner:
    """Where MetaSchedule measures candidates for ``spec``: this machine, or the servers behind an RPC tracker."""
    if remote is not None:
        return ms.runner.RPCRunner(
            rpc_config=ms.runner.RPCConfig(remote.host, remote.port, remote.key, int(remote.timeout)),
            f_alloc_argument=alloc_in_bounds_arguments_remote,
            max_workers=remote.free_servers(),
        )
    reason = spec.runnable_here(config)
    if reason is not None:
        raise TargetError(
            f"tuning for {spec.name} measures candidates on the device, but {reason}; "
            "measure on one through an RPC tracker (--rpc KEY@HOST:PORT)"
        )
    return ms.runner.LocalRunner(timeout_sec=LOCAL_TIMEOUT_S, f_alloc_argument=alloc_in_bounds_arguments)


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
