"""aarch64 on an emulated device: cross-compiled artifacts run over TVM RPC, and a short remote tuning run.

Needs the environment made by ``targets/emulated_aarch64/setup.sh`` (qemu-user,
the aarch64 cross g++, an aarch64 Python with TVM's runtime); run with ``-m arm``.
Emulated timings say nothing about ARM speed: these tests check correctness only.
"""

import os
import shutil
from pathlib import Path

import pytest
import torch

from lcnet_tvm import CompileOptions, compile_model, tune_model
from lcnet_tvm.evaluation.verify import eager_reference
from lcnet_tvm.model.checkpoint import SHIPPED_CHECKPOINT, dataset_for, load_checkpoint
from lcnet_tvm.runtime.compiled_model import CompiledModel

from .equivalence import check_against_eager
from .rpc_devices import rpc_devices
from .tiny import SHAPE, tiny_model

pytestmark = pytest.mark.arm

ROOT = Path(os.environ.get("LCNET_TVM_ARM_ROOT", Path.home() / ".cache" / "lcnet_tvm" / "aarch64"))
#: An emulated session imports TVM in about 30 s and runs 10-50x slower than native.
EMULATED_TIMEOUT = 600.0


@pytest.fixture(scope="module")
def emulated_aarch64(tmp_path_factory):
    python = ROOT / "python3"
    missing = [tool for tool in ("qemu-aarch64-static", "aarch64-linux-gnu-g++") if shutil.which(tool) is None]
    if missing or not python.exists():
        pytest.fail(f"the emulated aarch64 device is not set up (missing: {', '.join(missing) or python}); "
                    "run `bash targets/emulated_aarch64/setup.sh` (as root) first")
    with rpc_devices(tmp_path_factory.mktemp("arm-rpc"), "aarch64-emulated", [str(python)],
                     timeout=EMULATED_TIMEOUT, start_timeout=300) as devices:
        yield devices


def test_the_gated_model_cross_compiled_for_aarch64_runs_on_the_device_like_eager(emulated_aarch64, tmp_path):
    loaded = load_checkpoint(SHIPPED_CHECKPOINT)
    x = dataset_for(loaded).x_test[:12]
    # The shipped checkpoint magnifies float32 rounding: held to the allowance its own rounding sets (as demo and bench).
    tolerance = eager_reference(loaded.model, [x.numpy()]).tolerance
    directory = compile_model(loaded.model, loaded.config.input_shape, CompileOptions("aarch64"), name=loaded.name).save(tmp_path / "arm")
    with CompiledModel.load(directory, emulated_aarch64.server) as compiled:
        assert compiled.metadata.target["mtriple"] == "aarch64-linux-gnu"
        assert all(gate.lowered for gate in compiled.metadata.gates)
        check_against_eager(compiled, loaded.model, x, varying=False, tolerance=tolerance)  # too few for the variety check


def test_a_short_tune_measures_on_the_emulated_device_and_its_records_are_applied(emulated_aarch64, tmp_path):
    model = tiny_model()
    database = tmp_path / "db"
    compiled_untuned = compile_model(model, SHAPE, CompileOptions("aarch64", channel_buckets=1), name="tiny")
    trials = len(compiled_untuned.metadata.kernels)  # one candidate per kernel: the remote path, not speed
    report = tune_model(
        model, SHAPE, CompileOptions("aarch64", channel_buckets=1, database=database), trials, show_progress=False,
        remote=emulated_aarch64.tracker,
    )
    assert report.trials_measured == trials and not report.interrupted
    assert emulated_aarch64.sessions_served()[0] >= trials
    compiled = compile_model(model, SHAPE, CompileOptions("aarch64", channel_buckets=1, database=database), name="tiny")
    assert all(kernel.tuned for kernel in compiled.metadata.kernels), compiled.metadata.kernels
    with CompiledModel.load(compiled.save(tmp_path / "tuned"), emulated_aarch64.tracker) as on_device:
        x = torch.randn(8, *SHAPE, generator=torch.Generator().manual_seed(5))
        check_against_eager(on_device, model, x, varying=False)
