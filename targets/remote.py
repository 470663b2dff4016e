"""How to reach a device that is not this machine: a TVM RPC server, directly or through a tracker.

``HOST:PORT`` is an RPC server (``python -m tvm.exec.rpc_server``);
``KEY@HOST:PORT`` is a tracker (``python -m tvm.exec.rpc_tracker``) handing out
the servers registered under ``KEY`` (``rpc_server --tracker HOST:PORT --key
KEY``). Tuning measures through a tracker, on as many of its servers at once as
are free: MetaSchedule's own RPC runner does the distribution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tvm import rpc

from lcnet_tvm.errors import TargetError

_ADDRESS = re.compile(r"^(?:(?P<key>[^@\s]+)@)?(?P<host>[^:@\s]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class RemoteDevice:
    host: str
    port: int
    #: Device key at a tracker; ``None``: ``host:port`` is the RPC server itself.
    key: str | None = None
    #: Seconds one session (a run, or measuring one candidate) may take; emulated devices need minutes.
    timeout: float = 60.0

    @classmethod
    def parse(cls, address: str, timeout: float = 60.0) -> RemoteDevice:
        match = _ADDRESS.match(address)
        if match is None or not 0 < int(match["port"]) < 65536:
            raise TargetError(
                f"RPC address {address!r} is not HOST:PORT (an RPC server) or KEY@HOST:PORT (a tracker and device key)"
            )
        if timeout <= 0:
            raise TargetError(f"RPC timeout must be positive, got {timeout}")
        return cls(match["host"], int(match["port"]), match["key"], timeout)

    def __str__(self) -> str:
        return f"{self.key}@{self.host}:{self.port}" if self.key else f"{self.host}:{self.port}"

    def connect(self) -> rpc.RPCSession:
        """A session on the device (through the tracker when there is one)."""
        try:
            if self.key is None:
                return rpc.connect(self.host, self.port, session_timeout=self.timeout)
            return rpc.connect_tracker(self.host, self.port).request(self.key, session_timeout=self.timeout)
        except Exception as error:  # TVM raises RuntimeError/TVMError/OSError for unreachable peers
            raise TargetError(f"cannot reach RPC device {self}: {str(error).splitlines()[0]}") from None

    def free_servers(self) -> int:
        """Servers the tracker has free for this key (how many candidates can be measured at once)."""
        if self.key is None:
            raise TargetError(
                f"tuning over RPC measures through a tracker; {self} is a server address. Start "
                "`python -m tvm.exec.rpc_tracker`, register servers with `--tracker HOST:PORT --key KEY` "
                "and pass KEY@TRACKER_HOST:PORT"
            )
        try:
            queues = rpc.connect_tracker(self.host, self.port).summary()["queue_info"]
        except Exception as error:  # noqa: BLE001 (as above)
            raise TargetError(f"cannot reach RPC tracker {self.host}:{self.port}: {str(error).splitlines()[0]}") from None
        free = queues.get(self.key, {}).get("free", 0)
        if free < 1:
            raise TargetError(
                f"the tracker at {self.host}:{self.port} has no free server for key {self.key!r} "
                f"(keys it knows: {', '.join(queues) or 'none'}); start one with "
                f"`python -m tvm.exec.rpc_server --tracker {self.host}:{self.port} --key {self.key}`"
            )
        return free
