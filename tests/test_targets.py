"""Targets as data: CUDA code for every kernel (gathers and decisions included), aarch64 cross builds, clear errors off-device."""

import re
import shutil

import numpy as np
import pytest
import torch
import tvm
from lcnet_tvm.targets import TARGETS, get_target

from lcnet_tvm import CompileOptions, compile_model, tune_model
from lcnet_tvm.errors import TargetError

from .equivalence import check_against_eager
from .tiny import SHAPE, tiny_model

HAS_GPU = tvm.cuda(0).exist
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="CUDA code generation needs nvcc")


@pytest.fixture(scope="module")
def cuda_model():
    model = tiny_model()
    return model, compile_model(model, SHAPE, CompileOptions("cuda", channel_buckets=2), name="tiny")


@needs_nvcc
def test_every_kernel_has_cuda_code_bucket_convolutions_and_decisions_included(cuda_model):
    _, compiled = cuda_model
    device_code = [m for host in compiled.executable.mod.imports for m in host.imports if m.kind == "cuda"]
    source = device_code[0].inspect_source()
    generated = set(re.findall(r"__global__ void (?:__launch_bounds__\(\d+\) )?(\w+)_kernel\(", source))
    kernels = {kernel.name for kernel in compiled.metadata.kernels}
    # A bucket's convolutions gather their weights themselves (passes/fuse_channel_gathers.py).
    assert any(name.startswith("fused_gate") and "_channels" in name and "conv2d" in name for name in kernels)
    assert any(name.endswith("_decision") for name in kernels)  # serial programs: launched on one thread
    assert kernels <= generated, sorted(kernels - generated)


@needs_nvcc
@pytest.mark.skipif(HAS_GPU, reason="checks the error on a machine without a GPU")
def test_a_cuda_artifact_says_it_needs_a_gpu(cuda_model):
    _, compiled = cuda_model
    with pytest.raises(TargetError, match="no CUDA GPU"):
        compiled.run(np.zeros((1, *SHAPE), np.float32))


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_cuda_outputs_equal_eager(cuda_model):
    model, compiled = cuda_model
    x = torch.randn(40, *SHAPE, generator=torch.Generator().manual_seed(2))
    check_against_eager(compiled, model, x, varying=False)


def test_aarch64_builds_here_and_links_with_the_cross_compiler(tmp_path):
    compiled = compile_model(tiny_model(), SHAPE, CompileOptions("aarch64", channel_buckets=2), name="tiny")
    assert compiled.metadata.target["mtriple"] == "aarch64-linux-gnu"
    if shutil.which(get_target("aarch64").linker) is None:
        with pytest.raises(TargetError, match="apt-get install g\\+\\+-aarch64-linux-gnu"):
            compiled.save(tmp_path / "arm")
        assert not (tmp_path / "arm").exists()  # nothing half-written
        return
    compiled.save(tmp_path / "arm")
    assert (tmp_path / "arm" / "model.so").read_bytes()[18] == 0xB7  # ELF e_machine: AArch64


def test_every_target_describes_itself():
    for spec in TARGETS.values():
        config = spec.config()
        assert spec.tvm_target(config).kind.name == config["kind"]
        assert spec.description


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_cuda_tuning_measures_on_the_gpu_and_its_records_are_applied(tmp_path):
    model = tiny_model()
    untuned = compile_model(model, SHAPE, CompileOptions("cuda", channel_buckets=1), name="tiny")
    trials = 2 * len(untuned.metadata.kernels)
    report = tune_model(model, SHAPE, CompileOptions("cuda", channel_buckets=1, database=tmp_path / "db"), trials, show_progress=False)
    assert report.trials_measured == trials
    tuned = compile_model(model, SHAPE, CompileOptions("cuda", channel_buckets=1, database=tmp_path / "db"), name="tiny")
    assert all(kernel.tuned for kernel in tuned.metadata.kernels), tuned.metadata.kernels
    check_against_eager(tuned, model, torch.randn(40, *SHAPE, generator=torch.Generator().manual_seed(3)), varying=False)
