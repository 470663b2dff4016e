"""Running artifacts on TVM RPC devices (loopback servers here), and the errors a user gets for bad addresses."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from lcnet_tvm.targets.remote import RemoteDevice

from lcnet_tvm import CompileOptions, compile_model, tune_model
from lcnet_tvm.errors import TargetError
from lcnet_tvm.evaluation.verify import eager_outputs
from lcnet_tvm.runtime.compiled_model import CompiledModel

from .equivalence import check_against_eager
from .rpc_devices import free_port
from .tiny import BUCKETS, SHAPE, tiny_model


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    model = tiny_model()
    directory = compile_model(model, SHAPE, CompileOptions(batch_size=4, channel_buckets=BUCKETS), name="tiny").save(
        tmp_path_factory.mktemp("artifact") / "tiny"
    )
    return model, directory


@pytest.mark.parametrize("through", ["server", "tracker"])
def test_an_artifact_runs_on_an_rpc_device_like_eager(artifact, loopback_rpc, through):
    model, directory = artifact
    remote = loopback_rpc.server if through == "server" else loopback_rpc.tracker
    x = torch.randn(30, *SHAPE, generator=torch.Generator().manual_seed(3))  # 30 = 7 batches of 4 + a padded one
    with CompiledModel.load(directory, remote) as compiled:  # closing ends the session: the server is free again
        remote_result = check_against_eager(compiled, model, x, varying=False)
    local_result = CompiledModel.load(directory).run(x)
    np.testing.assert_array_equal(remote_result.logits, local_result.logits)


def test_lcnet_tvm_run_on_an_rpc_server(artifact, loopback_rpc, tmp_path):
    model, directory = artifact
    x = torch.randn(5, *SHAPE, generator=torch.Generator().manual_seed(4))
    np.save(tmp_path / "x.npy", x.numpy())
    completed = subprocess.run(
        [sys.executable, "-m", "lcnet_tvm.cli", "run", str(directory), "--input", str(tmp_path / "x.npy"),
         "--rpc", str(loopback_rpc.server), "--json", str(tmp_path / "r.json")],
        capture_output=True, text=True,
    )
    assert completed.returncode == 0, completed.stderr
    rows = json.loads((tmp_path / "r.json").read_text())["samples"]
    logits, _ = eager_outputs(model, x)
    assert [row["prediction"] for row in rows] == logits.argmax(1).tolist()


@pytest.mark.parametrize("address", ["localhost", "host:port", "a@b@c:1", "host:70000", ":9190"])
def test_a_malformed_rpc_address_is_refused(address):
    with pytest.raises(TargetError, match="is not HOST:PORT"):
        RemoteDevice.parse(address)


def test_unreachable_and_unusable_rpc_devices_say_what_to_do(loopback_rpc, tmp_path):
    nobody = RemoteDevice.parse(f"127.0.0.1:{free_port()}")
    with pytest.raises(TargetError, match=f"cannot reach RPC device {nobody}"):
        nobody.connect()
    with pytest.raises(TargetError, match="tuning over RPC measures through a tracker"):
        tune_model(tiny_model(), SHAPE, CompileOptions(database=tmp_path / "db"), 40, remote=loopback_rpc.server)
    unknown_key = RemoteDevice(loopback_rpc.tracker.host, loopback_rpc.tracker.port, "rasp4b")
    with pytest.raises(TargetError, match="no free server for key 'rasp4b' .*x86-loopback"):
        tune_model(tiny_model(), SHAPE, CompileOptions(database=tmp_path / "db"), 40, remote=unknown_key)
