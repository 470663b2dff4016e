"""Concurrent callers, long runs and unwritable outputs."""

import os
import statistics
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest

from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.cli import main
from lcnet_tvm.errors import OutputError
from lcnet_tvm.support.files import write_json

from .tiny import SHAPE, tiny_model

THREADS = 8


@pytest.fixture(scope="module")
def compiled():
    return compile_model(tiny_model(), SHAPE, CompileOptions(batch_size=2), name="tiny")


def test_eight_threads_on_one_model_get_the_serial_results(compiled):
    generator = np.random.default_rng(0)
    inputs = [generator.standard_normal((3, *SHAPE)).astype(np.float32) for _ in range(THREADS * 4)]
    serial = [compiled.run(x) for x in inputs]
    results: dict[int, list] = {}
    start = threading.Barrier(THREADS)

    def caller(index: int) -> None:
        start.wait()  # all threads call at once
        mine = range(index, len(inputs), THREADS)
        results[index] = [(i, compiled.run(inputs[i])) for _ in range(5) for i in mine]

    threads = [threading.Thread(target=caller, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(THREADS))
    for calls in results.values():
        for i, result in calls:
            np.testing.assert_array_equal(result.logits, serial[i].logits)
            for got, expected in zip(result.scores + result.computed, serial[i].scores + serial[i].computed):
                np.testing.assert_array_equal(got, expected)


def test_ten_thousand_inferences_do_not_grow_memory(compiled):
    x = np.random.default_rng(1).standard_normal((2, *SHAPE)).astype(np.float32)
    process = psutil.Process()

    def growth_over(inferences: int) -> int:
        before = process.memory_info().rss
        for _ in range(inferences):
            compiled.run(x).executed_flops  # FLOPs counted too: they run through PyTorch
        return process.memory_info().rss - before

    # Warm-up, the same work: allocator pools and caches reach their steady size. Within the first
    # 10,000 inferences RSS takes one step of about 2.7 MiB (here), which 30,000 more never repeat.
    warm_up = growth_over(10_000)
    # A leak grows RSS in every window; a pool that grows once, memory another thread of this test
    # process (an xdist worker) takes meanwhile, or memory handed back shows in one window at most.
    windows = [growth_over(10_000) for _ in range(3)]
    print(f"RSS growth over three windows of 10,000 inferences: {[f'{w / 2**20:.2f}' for w in windows]} MiB "
          f"(warm-up: {warm_up / 2**20:.2f} MiB)")
    # A leak of even one 64-byte object per inference would show as 0.6 MiB in each window, so in their median too.
    assert statistics.median(windows) < 2**20 / 2


def unwritable_directory(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (read-only for non-root; sysfs for root)."""
    if os.geteuid() != 0:
        directory = tmp_path / "read-only"
        directory.mkdir()
        directory.chmod(0o555)
        return directory
    if not Path("/sys/kernel").is_dir():
        pytest.skip("running as root without sysfs: no read-only directory to write into")
    return Path("/sys/kernel")


def test_an_artifact_into_a_read_only_directory_is_a_clear_error(compiled, tmp_path):
    directory = unwritable_directory(tmp_path)
    with pytest.raises(OutputError, match=f"cannot write the artifact to '{directory}/artifact'.*choose a writable -o"):
        compiled.save(directory / "artifact")


def test_json_reports_are_written_whole_or_not_at_all(tmp_path):
    directory = unwritable_directory(tmp_path)
    with pytest.raises(OutputError, match=f"cannot write '{directory}/report.json'"):
        write_json(directory / "report.json", {"a": 1})
    target = tmp_path / "report.json"
    write_json(target, {"a": 1})
    with pytest.raises(TypeError):  # not JSON: the old report stays, no temporary file is left
        write_json(target, {"a": object()})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["report.json", *(["read-only"] if os.geteuid() else [])])


def test_the_cli_reports_an_unwritable_output_in_one_line(tmp_path, capsys):
    directory = unwritable_directory(tmp_path)
    assert main(["compile", "-o", str(directory / "artifact")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("lcnet-tvm: error: cannot write the artifact to") and error.count("\n") == 1
