"""Tuning: budget spread, records applied and recorded per kernel, resume, databases for one target only."""

import gzip
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import tvm
from lcnet_tvm.schedules import builder
from lcnet_tvm.schedules import shipped as shipped_tuning
from lcnet_tvm.schedules.builder import ForkingBuilder
from lcnet_tvm.schedules.database import (
    RECORDS_FILE,
    UNREPLAYABLE_FILE,
    WORKLOADS_FILE,
    TuningDatabase,
    kernel_module,
    read_database,
    workload_key,
)
from lcnet_tvm.schedules.shipped import COMPRESSED_FILES, SHIPPED_TUNING_DIR, unpacked_database
from lcnet_tvm.schedules import tune as tuning
from lcnet_tvm.schedules.tune import BUDGET_SHARES, KernelTask, search_strategy, spread_budget, tune_kernels
from lcnet_tvm.targets import get_target
from tvm import te
from tvm.s_tir import meta_schedule as ms

from lcnet_tvm import CompileOptions, compile_model, tune_model
from lcnet_tvm.errors import DatabaseError, LcnetError

from .equivalence import check_against_eager
from .tiny import BUCKETS, SHAPE, TUNING_BUDGET, tiny_model


def task(flops: float, calls: int = 1) -> KernelTask:
    return KernelTask(f"k{flops}", None, calls, flops)


def test_the_budget_is_spread_by_runtime_share_and_adds_up():
    tasks = [task(1000.0), task(10.0), task(100.0, calls=3), task(1.0)]
    spread_budget(tasks, 100)
    assert sum(t.budget for t in tasks) == 100
    assert all(t.budget >= 1 for t in tasks)
    assert tasks[0].budget > tasks[2].budget > tasks[1].budget >= tasks[3].budget
    with pytest.raises(LcnetError, match="budget of 3 trials cannot tune the model's 4 kernels"):
        spread_budget(tasks, 3)


def _elementwise_task(name: str, scale: float, budget: int) -> KernelTask:
    a = te.placeholder((64,), name="a")
    scaled = te.compute((64,), lambda i: a[i] * scale, name="scaled")
    return KernelTask(name, kernel_module(te.create_prim_func([a, scaled])), 1, 64.0, budget=budget)


@pytest.mark.parametrize("stop_after_searches", [None, 2])
def test_a_tune_searches_in_passes_so_a_stop_leaves_every_kernel_a_like_share(stop_after_searches, tmp_path, monkeypatch):
    """Each search is MetaSchedule's; here one that measures what it is asked, so the passes' plan is what is seen."""
    searches: list[tuple[str, int]] = []

    def measure_as_asked(tasks, max_trials_global, measure_callbacks, **_):
        searches.append((tasks[0].task_name, max_trials_global))
        measure_callbacks[-1].record([], max_trials_global)
        if len(searches) == stop_after_searches:
            measure_callbacks[-1].stop.set()

    monkeypatch.setattr(tuning.ms, "tune_tasks", measure_as_asked)
    target = get_target("x86")
    tasks = [_elementwise_task("small", 3.0, 4), _elementwise_task("large", 2.0, 8)]
    tune_kernels(tasks, target.tvm_target(), target.device_type, TuningDatabase(tmp_path / "db", target.config()),
                 runner=None, builder=None, show_progress=False, seed=False)
    assert BUDGET_SHARES == (0.25, 0.5, 1.0)
    expected = [("large", 2), ("small", 1), ("large", 2), ("small", 1), ("large", 4), ("small", 2)]
    # Stopped after the first pass: each kernel has a quarter of its budget, not the large one all of its own.
    assert searches == expected[:stop_after_searches]


def test_every_kernel_is_tuned_and_the_artifact_says_so(tuned):
    model, directory, report = tuned
    assert not report.interrupted and report.trials_before == 0
    assert report.trials_measured == report.trials_budget == TUNING_BUDGET
    compiled = compile_model(model, SHAPE, CompileOptions(channel_buckets=BUCKETS, database=directory), name="tiny")
    kernels = compiled.metadata.kernels
    assert all(kernel.tuned and kernel.trials >= 1 for kernel in kernels), kernels
    assert compiled.metadata.tuning_database == str(directory)
    x = torch.randn(40, *SHAPE, generator=torch.Generator().manual_seed(2))
    result = check_against_eager(compiled, model, x, varying=False)  # two gates: few distinct patterns
    assert 0.0 < np.concatenate(result.decisions, axis=1).mean() < 1.0


def test_distributed_tuning_measured_candidates_on_both_servers(tuned, loopback_rpc):
    served = loopback_rpc.sessions_served()
    assert all(sessions > 0 for sessions in served) and sum(served) >= TUNING_BUDGET, served


def test_tuning_again_resumes_from_the_database(tuned):
    model, directory, _ = tuned
    options = CompileOptions(channel_buckets=BUCKETS, database=directory)
    again = tune_model(model, SHAPE, options, TUNING_BUDGET, show_progress=False)
    assert again.trials_before == TUNING_BUDGET and again.trials_measured == 0


def test_kernels_without_records_are_named_and_marked_untuned(tuned, caplog):
    _, directory, _ = tuned
    other = tiny_model(width=6)  # other shapes: no record matches
    with caplog.at_level(logging.WARNING):
        compiled = compile_model(other, SHAPE, CompileOptions(channel_buckets=BUCKETS, database=directory), name="tiny6")
    untuned = [kernel.name for kernel in compiled.metadata.kernels if not kernel.tuned]
    assert untuned and "have no tuning record" in caplog.text and untuned[0] in caplog.text


def test_a_database_is_for_one_target(tuned, tmp_path):
    _, directory, _ = tuned
    other = {**get_target("x86").config(), "mcpu": "x86-64"}
    with pytest.raises(DatabaseError, match="holds records for target"):
        TuningDatabase(directory, other)
    with pytest.raises(DatabaseError, match="holds records for target"):
        read_database(directory, other)
    with pytest.raises(DatabaseError, match="is not a tuning database"):
        read_database(tmp_path, other)


ROOT = Path(__file__).parent.parent
#: The interrupted tunes tune the tiny model's dense form: 5 kernels, a budget of 10 (what is interrupted
#: and resumed does not depend on the form; fewer kernels make a shorter test).
INTERRUPTED_BUDGET = 10
TUNE_SCRIPT = f"""
import sys
from tests.tiny import tiny_model, SHAPE
from lcnet_tvm import CompileOptions, tune_model
options = CompileOptions(gate_form="dense", database=sys.argv[1])
report = tune_model(tiny_model(), SHAPE, options, {INTERRUPTED_BUDGET}, show_progress=False)
print("interrupted" if report.interrupted else "finished", report.trials_before + report.trials_measured)
"""


def _tune_until_records_then(send: signal.Signals, directory: Path) -> subprocess.CompletedProcess:
    """Start a tune of the tiny model (dense) in a new process; once 3 records are on disk, send it ``send``."""
    records = directory / "database_tuning_record.json"
    command = [sys.executable, "-c", TUNE_SCRIPT, str(directory)]
    tuning = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (records.exists() and records.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        if tuning.poll() is not None:
            pytest.fail(f"the tune exited early with {tuning.returncode}: {tuning.communicate()[1][-2000:]}")
        time.sleep(0.5)
    tuning.send_signal(send)
    stdout, stderr = tuning.communicate(timeout=300)
    return subprocess.CompletedProcess(command, tuning.returncode, stdout, stderr)


def _rerun_finishes_the_budget(directory: Path) -> None:
    # In this process: what is resumed is on disk (and MetaSchedule's tensor intrinsics, ~30 s to import
    # in a new process, are loaded here already).
    options = CompileOptions(gate_form="dense", database=directory)
    resumed = tune_model(tiny_model(), SHAPE, options, INTERRUPTED_BUDGET, show_progress=False)
    assert not resumed.interrupted and resumed.trials_before + resumed.trials_measured == INTERRUPTED_BUDGET
    # as for an uninterrupted run
    assert (directory / "database_tuning_record.json").read_text().count("\n") == INTERRUPTED_BUDGET


def test_ctrl_c_stops_tuning_keeps_records_and_a_rerun_finishes_the_budget(tmp_path):
    interrupted = _tune_until_records_then(signal.SIGINT, tmp_path / "db")
    assert interrupted.stdout.strip(), interrupted.stderr[-2000:]
    state, trials = interrupted.stdout.splitlines()[-1].split()
    assert interrupted.returncode == 0 and state == "interrupted", interrupted.stdout + interrupted.stderr
    kept = (tmp_path / "db" / "database_tuning_record.json").read_text().count("\n")
    assert 3 <= kept < INTERRUPTED_BUDGET and int(trials) == kept
    _rerun_finishes_the_budget(tmp_path / "db")


@pytest.mark.slow
def test_a_killed_tune_keeps_its_records_and_a_rerun_finishes_the_budget(tmp_path):
    killed = _tune_until_records_then(signal.SIGKILL, tmp_path / "db")
    assert killed.returncode == -signal.SIGKILL
    kept = sum(read_database(tmp_path / "db", get_target("x86").config()).trials.values())
    assert 3 <= kept < INTERRUPTED_BUDGET
    _rerun_finishes_the_budget(tmp_path / "db")


SHIPPED_DATABASES = sorted({path.parent.resolve() for path in SHIPPED_TUNING_DIR.glob("*/*/target.json")})


@pytest.mark.parametrize("directory", SHIPPED_DATABASES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_shipped_records_unpack_once_into_the_cache(directory, tmp_path, monkeypatch):
    monkeypatch.setenv("LCNET_TVM_CACHE", str(tmp_path))
    unpacked = unpacked_database(directory)
    assert unpacked.is_relative_to(tmp_path)
    for name in COMPRESSED_FILES:
        assert (unpacked / name.removesuffix(".gz")).read_bytes() == gzip.decompress((directory / name).read_bytes())
    assert unpacked_database(directory) == unpacked
    assert [path.name for path in unpacked.parent.iterdir()] == [unpacked.name], "no staging directory left behind"
    spec = get_target(directory.parent.name)
    assert sum(read_database(unpacked, spec.config()).trials.values()) > 0


def test_a_half_written_record_from_a_killed_tune_is_dropped_and_a_corrupt_line_named(tuned, tmp_path):
    model, directory, _ = tuned
    copy = tmp_path / "db"
    shutil.copytree(directory, copy)
    records = copy / "database_tuning_record.json"
    complete = records.read_bytes()
    records.write_bytes(complete + complete.splitlines(keepends=True)[-1][:25])  # killed mid-line
    config = get_target("x86").config()
    assert sum(read_database(copy, config).trials.values()) == TUNING_BUDGET  # a reader reads around it
    assert records.read_bytes() != complete  # ... and leaves the file alone (a tune may be appending)
    compiled = compile_model(model, SHAPE, CompileOptions(channel_buckets=BUCKETS, database=copy), name="tiny")
    assert all(kernel.tuned for kernel in compiled.metadata.kernels)
    again = tune_model(model, SHAPE, CompileOptions(channel_buckets=BUCKETS, database=copy), TUNING_BUDGET,
                       show_progress=False)
    # the tune cut the partial line off
    assert again.trials_before == TUNING_BUDGET and records.read_bytes() == complete
    lines = complete.splitlines(keepends=True)
    records.write_bytes(b"".join([*lines[:3], b'[0, ["garbage"\n', *lines[3:]]))
    with pytest.raises(DatabaseError, match=f"line 4 of '{records}' is corrupt"):
        read_database(copy, config)
    records.write_bytes(b"".join([*lines[:3], b"[99, [null, null, null, null]]\n", *lines[3:]]))
    with pytest.raises(DatabaseError, match=f"line 4 of '{records}' is not a record of a kernel"):
        read_database(copy, config)


def test_without_usable_shipped_records_the_untuned_kernels_are_named(monkeypatch, caplog):
    monkeypatch.setattr(shipped_tuning, "SHIPPED_TUNING_DIR", Path("/nonexistent"))  # e.g. a CPU without AVX2
    assert shipped_tuning.target_and_records("lcnet_resnet20_cifar") == ("x86", None)
    compiled = compile_model(tiny_model(), SHAPE, CompileOptions(channel_buckets=BUCKETS), name="tiny")
    kernels = compiled.metadata.kernels
    with caplog.at_level(logging.WARNING):
        shipped_tuning.warn_untuned("lcnet_resnet20_cifar", compiled.metadata.untuned_kernels)
    assert f"these {len(kernels)} kernels run untuned" in caplog.text
    assert all(kernel.name in caplog.text for kernel in kernels)


def test_a_compile_for_another_target_than_the_shipped_records_names_the_option_that_uses_them(shipped_tree, caplog):
    if get_target("x86-avx2").runnable_here(get_target("x86-avx2").config()) is not None:
        pytest.skip("the x86-avx2 records do not run on this machine")
    shipped_tree("lcnet_resnet20_cifar", "x86-avx2")
    assert shipped_tuning.records_for("lcnet_resnet20_cifar", "x86-avx512") is None
    with caplog.at_level(logging.WARNING):
        shipped_tuning.warn_untuned("lcnet_resnet20_cifar", ["conv2d"], "x86-avx512")
    assert "compiled for x86-avx512 without tuning records: these 1 kernels run untuned: conv2d" in caplog.text
    assert "run on this machine with --target x86-avx2" in caplog.text


def test_the_widest_level_is_preferred_and_records_serve_every_target_with_their_code(shipped_tree):
    levels = [name for name in ("x86-avx512", "x86-avx2") if get_target(name).runnable_here(get_target(name).config()) is None]
    if not levels:
        pytest.skip("neither x86 level runs on this machine")
    shipped_tree("lcnet_resnet20_cifar", "x86-avx2", "x86-avx512", "aarch64")
    name, widest = shipped_tuning.shipped_records("lcnet_resnet20_cifar")
    assert name == levels[0] and widest.parent.name == levels[0]
    assert shipped_tuning.records_for("lcnet_resnet20_cifar", None) == (name, widest)
    assert shipped_tuning.records_for("lcnet_resnet20_cifar", "x86") == ("x86", widest)  # the host's level
    for level in levels:
        served, database = shipped_tuning.records_for("lcnet_resnet20_cifar", level)
        assert served == level and database.parent.name == level
    assert shipped_tuning.records_for("lcnet_resnet20_cifar", "aarch64") is None  # its code does not run here
    assert shipped_tuning.records_for("lcnet_resnet56_cifar", "x86") is None


def test_the_search_population_grows_with_a_kernels_budget():
    assert [search_strategy(budget).population_size for budget in (1, 4, 8, 32, 500)] == [64, 64, 128, 512, 512]


UNREPLAYABLE_DB = Path(__file__).parent / "data" / "unreplayable_db"


def test_records_metaschedule_cannot_replay_are_set_aside(tmp_path, caplog):
    """A real case: MetaSchedule wrote an rfactor'd mean kernel's record (line 2) that it cannot read back."""
    directory = tmp_path / "db"
    shutil.copytree(UNREPLAYABLE_DB, directory)
    replayable, unreplayable = (UNREPLAYABLE_DB / RECORDS_FILE).read_text().splitlines(keepends=True)
    index, record = json.loads(unreplayable)
    record[1] = [run / 10 for run in record[1]]  # the fastest: the one a compile tries first
    faster = json.dumps([index, record]) + "\n"
    (directory / RECORDS_FILE).write_text(replayable + faster)
    config = get_target("x86-avx2").config()
    with caplog.at_level(logging.WARNING):
        reader = read_database(directory, config)
    assert "1 records in" in caplog.text and "cannot be replayed by MetaSchedule (lines 2); using the next" in caplog.text
    (workload,) = reader.database.get_all_tuning_records()[0:1]
    (applied,) = reader.database.get_top_k(reader.database.commit_workload(workload.workload.mod), 1)
    assert applied.run_secs[0].value == json.loads(replayable)[1][1][0] and sum(reader.trials.values()) == 2
    assert (directory / RECORDS_FILE).read_text() == replayable + faster  # a reader changes nothing
    tuning = TuningDatabase(directory, config)  # a tune moves the record aside, once
    assert len(tuning.database) == 1
    assert (directory / RECORDS_FILE).read_text() == replayable
    assert (directory / UNREPLAYABLE_FILE).read_text() == faster


def test_a_compile_reads_the_record_metaschedule_would_apply_to_each_kernel(tuned):
    _, directory, _ = tuned
    everything = ms.database.JSONDatabase(
        str(directory / WORKLOADS_FILE), str(directory / RECORDS_FILE), allow_missing=False
    )
    best = read_database(directory, get_target("x86").config())
    records = everything.get_all_tuning_records()
    assert best.trials == Counter(workload_key(record.workload.mod) for record in records)
    workloads = {workload_key(record.workload.mod): record.workload for record in records}
    target = get_target("x86").tvm_target()
    for workload in workloads.values():
        (expected,) = everything.get_top_k(workload, 1)
        applied = best.database.query_tuning_record(workload.mod, target, "main")
        assert str(applied.trace) == str(expected.trace)


def test_a_tune_ends_by_setting_aside_records_it_wrote_but_cannot_replay(tmp_path):
    directory = tmp_path / "db"
    shutil.copytree(UNREPLAYABLE_DB, directory)
    good, unreplayable = (UNREPLAYABLE_DB / RECORDS_FILE).read_text().splitlines(keepends=True)
    (directory / RECORDS_FILE).write_text(good)
    tuning = TuningDatabase(directory, get_target("x86-avx2").config())
    with (directory / RECORDS_FILE).open("a") as records:  # as MetaSchedule appends while tuning
        records.write(unreplayable)
    tuning.set_aside_unreplayable()
    assert (directory / RECORDS_FILE).read_text() == good and (directory / UNREPLAYABLE_FILE).read_text() == unreplayable
    assert len(tuning.database) == 1


def test_readers_open_a_database_once_while_its_files_are_unchanged(tmp_path):
    directory = tmp_path / "db"
    shutil.copytree(UNREPLAYABLE_DB, directory)
    good, _ = (UNREPLAYABLE_DB / RECORDS_FILE).read_text().splitlines(keepends=True)
    (directory / RECORDS_FILE).write_text(good)
    config = get_target("x86-avx2").config()
    first = read_database(directory, config)
    assert read_database(directory, config) is first
    (directory / RECORDS_FILE).write_text(good + good)  # a tune added a record
    again = read_database(directory, config)
    assert again is not first and sum(again.trials.values()) == 2
    with pytest.raises(DatabaseError, match="holds records for target"):
        read_database(directory, {**config, "mcpu": "x86-64"})


def _candidate() -> ms.builder.BuilderInput:
    a = te.placeholder((64,), name="a")
    doubled = te.compute((64,), lambda i: a[i] * 2.0, name="doubled")
    return ms.builder.BuilderInput(kernel_module(te.create_prim_func([a, doubled])), get_target("x86").tvm_target())


def test_candidates_build_in_a_child_process_and_load():
    (result,) = ForkingBuilder().build([_candidate()])
    assert result.error_msg is None
    doubled = tvm.runtime.load_module(result.artifact_path)["main"]
    a = tvm.runtime.tensor(np.arange(64, dtype="float32"))
    out = tvm.runtime.tensor(np.zeros(64, "float32"))
    doubled(a, out)
    np.testing.assert_array_equal(out.numpy(), 2 * np.arange(64))


def test_a_build_that_does_not_end_is_stopped_and_one_that_fails_or_dies_is_reported(monkeypatch):
    monkeypatch.setattr(builder, "build_candidate", lambda mod, target: time.sleep(600))
    started = time.monotonic()
    (stopped,) = ForkingBuilder(timeout=1).build([_candidate()])
    assert stopped.artifact_path is None and stopped.error_msg == "the build took over 1 s and was stopped"
    assert time.monotonic() - started < 30

    def fail(mod, target):
        raise ValueError("no schedule fits")

    monkeypatch.setattr(builder, "build_candidate", fail)
    (failed,) = ForkingBuilder().build([_candidate()])
    assert failed.artifact_path is None and failed.error_msg == "ValueError: no schedule fits"

    monkeypatch.setattr(builder, "build_candidate", lambda mod, target: os.kill(os.getpid(), signal.SIGKILL))
    (killed,) = ForkingBuilder().build([_candidate()])
    assert killed.artifact_path is None and killed.error_msg == "the build process was killed by SIGKILL"


def test_a_time_limit_stops_tuning_and_keeps_what_was_measured(tmp_path):
    options = CompileOptions(gate_form="dense", database=tmp_path / "db")
    # Up before the first round ends: that round's records are kept, no other round runs.
    report = tune_model(tiny_model(), SHAPE, options, INTERRUPTED_BUDGET, show_progress=False, time_limit=1e-3)
    assert report.time_limit_reached and not report.interrupted
    assert report.trials_measured < INTERRUPTED_BUDGET
    kept = sum(read_database(tmp_path / "db", get_target("x86").config()).trials.values())
    assert kept == report.trials_measured
    with pytest.raises(LcnetError, match="the time limit must be positive, got 0 s"):
        tune_model(tiny_model(), SHAPE, options, INTERRUPTED_BUDGET, time_limit=0)


def test_a_build_timeout_must_be_positive(tmp_path):
    with pytest.raises(LcnetError, match="the build timeout must be positive seconds, got 0"):
        tune_model(tiny_model(), SHAPE, CompileOptions(database=tmp_path / "db"), 4, build_timeout=0)
