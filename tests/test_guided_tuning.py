"""Guided tuning budgets: kernels get trials by the time they take on real inputs, not by call sites."""

import shutil

import pytest
import torch
from lcnet_tvm.schedules import tune
from lcnet_tvm.schedules.tune import KernelTask, guided_tasks, spread_budget

from lcnet_tvm import CompileOptions, LcnetError, tune_model
from lcnet_tvm.compiler.driver import build
from lcnet_tvm.model.gates import find_gates

from .tiny import BUCKETS, SHAPE, tiny_model

INPUTS = torch.randn(6, *SHAPE, generator=torch.Generator().manual_seed(4))


def observed_task_calls(gate_bias: float) -> tuple[dict[str, float], list[KernelTask]]:
    """Observed calls per inference of each tuning task, with every gate's bias set to ``gate_bias``."""
    model = tiny_model()
    with torch.no_grad():
        for _, gate in find_gates(model):
            gate.fc.bias.fill_(gate_bias)
    tasks = guided_tasks(model, SHAPE, CompileOptions(channel_buckets=BUCKETS), INPUTS)
    return {task.name: task.calls for task in tasks}, tasks


def test_kernels_the_gates_never_choose_are_seen_not_to_run():
    keep_all, tasks = observed_task_calls(30.0)
    skip_all, _ = observed_task_calls(-30.0)
    assert set(keep_all) == set(skip_all) == {task.name for task in tasks}
    convs = {name for name in keep_all if "conv2d" in name}
    idle_with_keep = {name for name in convs if keep_all[name] == 0}
    idle_with_skip = {name for name in convs if skip_all[name] == 0}
    # Keeping everything runs the widest bucket's convs only; skipping everything runs no branch conv at all.
    assert idle_with_keep and idle_with_keep < idle_with_skip < convs
    assert all(calls == int(calls) for calls in keep_all.values())  # every input decides alike
    assert all(keep_all[name] == skip_all[name] for name in convs - idle_with_skip)  # convs outside the gates


def test_the_guided_budget_goes_to_kernels_that_run():
    _, tasks = observed_task_calls(-30.0)
    for task in tasks:
        task.ms = None  # by calls x FLOPs
    spread_budget(tasks, 200)
    idle = [task for task in tasks if task.calls == 0]
    busy = [task for task in tasks if task.calls > 0]
    assert idle and busy
    assert all(task.budget == 1 for task in idle)
    assert sum(task.budget for task in busy) == 200 - len(idle)


def test_guided_tasks_carry_the_time_their_kernels_took():
    calls, tasks = observed_task_calls(-30.0)
    assert all(task.ms is not None and task.ms >= 0 for task in tasks)
    assert all(task.ms > 0 for task in tasks if calls[task.name] > 0)
    assert all(task.ms == 0 for task in tasks if calls[task.name] == 0)
    # Candidates measured elsewhere (RPC): this machine's pace says nothing, the budget goes by calls x FLOPs.
    untimed = guided_tasks(tiny_model(), SHAPE, CompileOptions(channel_buckets=BUCKETS), INPUTS, time_kernels=False)
    assert all(task.ms is None for task in untimed)


def test_a_timed_budget_follows_time_not_flops():
    """Two kernels of equal calls x FLOPs: the one whose calls took 9x longer gets 9x the spare trials."""
    tasks = [KernelTask(name, None, calls=1.0, flops=1e6, ms=ms) for name, ms in (("slow", 0.9), ("fast", 0.1))]
    spread_budget(tasks, 102)
    assert [task.budget for task in tasks] == [1 + 90, 1 + 10]
    untimed = [KernelTask(name, None, calls=1.0, flops=1e6) for name in ("a", "b")]
    spread_budget(untimed, 102)
    assert [task.budget for task in untimed] == [51, 51]


def test_guiding_needs_a_whole_batch():
    with pytest.raises(LcnetError, match="at least one batch of 4 inputs, got 2"):
        guided_tasks(tiny_model(), SHAPE, CompileOptions(batch_size=4, channel_buckets=BUCKETS), INPUTS[:2])


class _Planned(Exception):
    """Stops a tune once its guide build is made."""


def test_a_guided_tune_times_its_kernels_with_the_records_it_resumes(tuned, tmp_path, monkeypatch):
    model, directory, _ = tuned
    resumed, fresh = tmp_path / "resumed", tmp_path / "fresh"
    shutil.copytree(directory, resumed)
    tuned_kernels = []

    def guide_build(*args, **kwargs):
        built = build(*args, **kwargs)
        tuned_kernels.append(built.compiled.tuning.tuned)
        raise _Planned

    monkeypatch.setattr(tune, "build", guide_build)
    for database in (resumed, fresh):
        with pytest.raises(_Planned):
            tune_model(model, SHAPE, CompileOptions(channel_buckets=BUCKETS, database=database), 100, guide_inputs=INPUTS)
    assert tuned_kernels[0] > 0 and tuned_kernels[1] == 0  # a database without records: every kernel runs untuned


def test_budgets_in_mixed_units_are_refused():
    tasks = [KernelTask("timed", None, calls=1.0, flops=1e6, ms=0.5), KernelTask("untimed", None, calls=1.0, flops=1e6)]
    with pytest.raises(ValueError, match="different units"):
        spread_budget(tasks, 10)
