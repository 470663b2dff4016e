"""Tuning a model: its kernels as tasks, the budget spread over them, MetaSchedule (XGBoost cost model) per task.

:func:`tune_model` is the whole job (``lcnet-tvm tune``): lower the model to
its kernels once, weigh each by its expected share of the runtime (or, guided,
by the time it took on held-out inputs), spread the trials, tune each kernel
with :func:`tune_kernels`, resuming from what the database already holds.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

import torch
import tvm
from lcnet_tvm.targets.remote import RemoteDevice
from torch import nn
from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.analysis import estimate_tir_flops

from lcnet_tvm.compiler.driver import build, lower_to_kernels
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.errors import LcnetError
from lcnet_tvm.runtime.instrument import observe_kernels

from .builder import DEFAULT_BUILD_TIMEOUT, ForkingBuilder
from .database import TuningDatabase, kernel_module, workload_key
from .measure import tuning_runner
from .seeding import mean_seconds, refitted_schedule, seeds_for

logger = logging.getLogger(__name__)

#: Candidates measured per search round (MetaSchedule's default is 64; fewer keeps small budgets even).
TRIALS_PER_ROUND = 16
#: A tune searches in passes: in each, every kernel up to this share of its budget (largest budgets first), so that
#: a time limit or Ctrl-C leaves each kernel with a like share of its budget. In one pass, the kernels with the
#: largest budgets took a whole time limit: a ResNet-18 tune stopped after 50 minutes with three stride-2
#: convolutions at 10-59 trials, 2x slower than OpenVINO's, while each stride-1 one had 600.
BUDGET_SHARES = (0.25, 0.5, 1.0)
#: Evolutionary-search population: MetaSchedule's default 512 from 32 trials up, 16 per trial below, at least 64.
MAX_POPULATION, MIN_POPULATION, POPULATION_PER_TRIAL = 512, 64, 16


def search_strategy(budget: int) -> ms.search_strategy.EvolutionarySearch:
    """MetaSchedule's evolutionary search with its population scaled to a kernel's budget.

    Evolving and scoring the default 512 candidates takes seconds per kernel
    whatever the budget, so it dominated tunes where most kernels get a trial
    or two (a tiny model's 40-trial tune: 181 s with 512, 80 s with 64).
    """
    population = min(MAX_POPULATION, max(MIN_POPULATION, POPULATION_PER_TRIAL * budget))
    return ms.search_strategy.EvolutionarySearch(population_size=population, init_min_unmeasured=min(50, population // 4))


@dataclass
class KernelTask:
    """One kernel to tune and its share of the budget."""

    name: str
    mod: tvm.IRModule
    #: Calls per inference: its call sites in the model, or the mean observed on real inputs
    #: (a channel bucket or a gated block runs only when the gates choose it).
    calls: float
    flops: float
    #: Milliseconds per inference its calls took, timed in place on real inputs with the records the
    #: database held (guided tunes of a host program); None: not timed.
    ms: float | None = None
    budget: int = 0
    done: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.done)

    def short_of(self, share: float) -> int:
        """Trials still to measure for ``share`` of the budget."""
        return min(self.remaining, math.ceil(share * self.budget) - self.done)


def tune_model(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    options: CompileOptions,
    trials: int,
    remote: RemoteDevice | None = None,
    guide_inputs: torch.Tensor | None = None,
    show_progress: bool = True,
    build_timeout: float = DEFAULT_BUILD_TIMEOUT,
    seed: bool = True,
    time_limit: float | None = None,
) -> TuneReport:
    """Tune every kernel of ``model`` compiled as ``options`` say, recording into ``options.database``.

    The budget of ``trials`` measured candidates is spread over the kernels by
    expected runtime share (calls x FLOPs, at least one trial each); re-running
    with the same database resumes. With ``guide_inputs`` the share is the time
    each kernel took running a build on them with the records the database
    holds (the same lowering the tasks come from): the channel buckets and
    blocks the gates really choose get the trials, and among them the kernels
    whose records are still slow (measuring through ``remote``, whose kernels
    may run at another pace than this machine's, the observed calls x FLOPs);
    without, every kernel counts as always running. A guided tune run again is
    re-planned by what the records now achieve: a kernel whose share is below
    its trials so far gets none. Candidates are
    measured on this machine, or through the RPC tracker ``remote``; each is built
    in a child process stopped after ``build_timeout`` seconds. With ``seed``, a
    kernel's search starts from the refitted best schedules of tuned kernels of
    its form (:mod:`.seeding`); without, from scratch. With ``time_limit``
    (seconds), tuning stops once that time has passed, as Ctrl-C stops it.
    """
    if options.database is None:
        raise LcnetError("tuning records into a database directory: give one (--db DIR)")
    if not build_timeout > 0:
        raise LcnetError(f"the build timeout must be positive seconds, got {build_timeout}")
    if time_limit is not None and not time_limit > 0:
        raise LcnetError(f"the time limit must be positive, got {time_limit} s")
    runner = tuning_runner(options.target, options.target_config, remote)
    builder = ForkingBuilder(link=options.target.library_compiler(), timeout=build_timeout)
    database = TuningDatabase(options.database, options.target_config)
    target = options.tvm_target
    if guide_inputs is None:
        tasks = kernel_tasks(lower_to_kernels(model, input_shape, options), target)
    else:
        records = options.database if len(database.database) else None
        tasks = guided_tasks(
            model, input_shape, options.replace(database=records), guide_inputs, time_kernels=remote is None
        )
    spread_budget(tasks, trials)
    logger.info("tuning %d kernels for %s with %d trials", len(tasks), options.target.name, trials)
    return tune_kernels(
        tasks, target, options.target.device_type, database, runner, builder, show_progress, seed, time_limit
    )


def guided_tasks(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    options: CompileOptions,
    inputs: torch.Tensor,
    time_kernels: bool = True,
) -> list[KernelTask]:
    """The tuning tasks of ``model``, each with its calls per inference and (``time_kernels``, on a host
    program) their time, observed running a build of it (with ``options.database``'s records, if any) on
    ``inputs`` (whole batches): a channel bucket or gated block runs only when the gates choose it, and a
    kernel whose record is slow takes the time it takes."""
    batch = options.batch_size
    if len(inputs) < batch:
        raise LcnetError(f"guiding the tuning budget needs at least one batch of {batch} inputs, got {len(inputs)}")
    batches = [inputs[start : start + batch].numpy() for start in range(0, len(inputs) - batch + 1, batch)]
    guide = build(model, input_shape, options.replace(timed=True))
    kernels = guide.phases.kernels
    observed = observe_kernels(guide.compiled, batches)
    timed = time_kernels and all(use.ms is not None for use in observed.values())
    # Summed over the kernels MetaSchedule tunes as one workload.
    calls: dict[int, float] = defaultdict(float)
    times: dict[int, float] = defaultdict(float)
    for gv, func in kernels.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc) and gv.name_hint in observed:
            key, use = workload_key(kernel_module(func)), observed[gv.name_hint]
            calls[key] += use.calls
            times[key] += use.ms if timed else 0.0
    if not any(calls.values()):
        raise LcnetError("no kernel of the build was seen to run on the guide inputs; report this as a bug")
    tasks = kernel_tasks(kernels, options.tvm_target)
    for task in tasks:
        key = workload_key(task.mod)
        task.calls = calls.get(key, 0.0)
        task.ms = times.get(key, 0.0) if timed else None
    return tasks


def kernel_tasks(kernels: tvm.IRModule, target: tvm.target.Target) -> list[KernelTask]:
    """Every distinct kernel of a module the pipeline left after its kernels phase."""
    extracted = ms.relax_integration.extract_tasks(kernels, target)
    return [
        KernelTask(task.task_name, task.dispatched[0], int(task.weight), max(1.0, estimate_tir_flops(task.dispatched[0])))
        for task in extracted
    ]


def spread_budget(tasks: list[KernelTask], trials: int) -> None:
    """Give each task a budget proportional to its expected runtime share, at least 1: its time where every
    task was timed (a guided tune), else calls x FLOPs.

    Every kernel gets a trial, also one never seen to run: an input may still choose it.

    Largest-remainder rounding, so the budgets add up to ``trials`` exactly.
    """
    if trials < len(tasks):
        raise LcnetError(
            f"a budget of {trials} trials cannot tune the model's {len(tasks)} kernels; give at least {len(tasks)}"
        )
    timed = all(task.ms is not None for task in tasks)
    if not timed and any(task.ms is not None for task in tasks):
        raise ValueError("some tasks are timed and some are not: their shares would be in different units")
    work = [task.ms if timed else task.calls * task.flops for task in tasks]
    spare = trials - len(tasks)
    exact = [spare * w / (sum(work) or 1.0) for w in work]
    budgets = [1 + math.floor(e) for e in exact]
    by_remainder = sorted(range(len(tasks)), key=lambda i: exact[i] - math.floor(exact[i]), reverse=True)
    for index in by_remainder[: trials - sum(budgets)]:
        budgets[index] += 1
    for task, budget in zip(tasks, budgets):
        task.budget = budget


@dataclass
class TuneReport:
    kernels: int
    trials_budget: int
    trials_before: int
    trials_measured: int
    seconds: float
    #: stopped by Ctrl-C
    interrupted: bool
    #: stopped because the time limit had passed
    time_limit_reached: bool = False


@derived_object
class _Progress(ms.measure_callback.PyMeasureCallback):
    """Advances the progress bar after every measured round."""

    def __init__(self, bar: tqdm, names: list[str], stop: threading.Event):
        super().__init__()
        self.bar = bar
        self.names = names
        self.stop = stop
        self.best: dict[str, float] = {}
        #: trials measured so far
        self.measured = 0

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        if self.stop.is_set():
            raise _StopRequested  # ends this task's search; its measured records are already committed
        self.record(
            [result.run_secs for result in runner_results if result.error_msg is None and result.run_secs],
            len(measure_candidates),
        )

    def record(self, run_secs: list[list[float]], trials: int) -> None:
        """``trials`` more measured; ``run_secs`` those that ran."""
        name = self.names[0]  # one task per tuning call
        self.measured += trials
        for seconds in run_secs:
            self.best[name] = min(self.best.get(name, math.inf), mean_seconds(seconds))
        self.bar.update(trials)
        best = self.best.get(name)
        self.bar.set_postfix_str(f"{name[:32]} best {best * 1e6:.1f} us" if best else name[:32])


class _StopRequested(Exception):
    """Raised in MetaSchedule's callback once tuning was asked to stop (Ctrl-C, the time limit)."""


@contextlib.contextmanager
def _stop_after(time_limit: float | None, stop: threading.Event, bar: tqdm):
    """Sets ``stop`` (and the yielded event) once ``time_limit`` seconds have passed; ``None``: never."""
    time_up = threading.Event()
    if time_limit is None:
        yield time_up
        return

    def stop_now():
        if not stop.is_set():  # not already stopped by Ctrl-C
            message = f"time limit of {time_limit / 60:g} min reached: stopping after the round in flight"
            bar.write(message, file=sys.stderr)
            time_up.set()
            stop.set()

    timer = threading.Timer(time_limit, stop_now)
    timer.daemon = True
    timer.start()
    try:
        yield time_up
    finally:
        timer.cancel()


@contextlib.contextmanager
def _stop_on_ctrl_c(bar: tqdm):
    """Ctrl-C sets the yielded event instead of raising.

    A KeyboardInterrupt raised while MetaSchedule's C++ loop calls back into
    Python is swallowed there and tuning carries on; an event the driver checks
    between rounds and tasks really stops it.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(_signum, _frame):
        if not stop.is_set():
            bar.write("stopping after the round in flight (Ctrl-C again to kill; records so far are kept)", file=sys.stderr)
            stop.set()
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def tune_kernels(
    tasks: list[KernelTask],
    target: tvm.target.Target,
    device_type: str,
    database: TuningDatabase,
    runner: ms.runner.Runner,
    builder: ms.builder.Builder,
    show_progress: bool = True,
    seed: bool = True,
    time_limit: float | None = None,
) -> TuneReport:
    """Tune each task up to its budget, resuming from what ``database`` already holds.

    In passes (:data:`BUDGET_SHARES`): each takes every task up to a share of
    its budget. Within a pass the tasks with the largest budgets go first, so
    that with ``seed`` the full convolutions are tuned before the channel
    buckets their schedules seed; before any search, every task without a
    record takes the seeds the database already has for it, and again when its
    search first starts (by then kernels searched earlier can seed it better).
    Ctrl-C, or ``time_limit`` seconds passing, stops after the round in flight;
    every measured record is already in the database.
    """
    done = database.trials_by_workload()
    for task in tasks:
        task.done = done.get(workload_key(task.mod), 0)
    trials_before = sum(min(task.done, task.budget) for task in tasks)
    records_before = sum(task.done for task in tasks)
    total = sum(task.budget for task in tasks)
    started = time.perf_counter()
    with (
        tqdm(total=total, initial=trials_before, unit="trial", disable=not show_progress, desc="tuning") as bar,
        _stop_on_ctrl_c(bar) as stop,
        _stop_after(time_limit, stop, bar) as time_up,
    ):
        ordered = sorted((task for task in tasks if task.remaining), key=lambda task: task.budget, reverse=True)

        def context_of(task: KernelTask) -> ms.TuneContext:
            return ms.TuneContext(
                mod=task.mod, target=target, space_generator="post-order-apply",
                search_strategy=search_strategy(task.budget), task_name=task.name, num_threads="physical",
            )

        def seed_task(task: KernelTask, context: ms.TuneContext, progress: _Progress) -> None:
            seeded = _seed_kernel(task, context, device_type, database, runner, builder)
            task.done += len(seeded)
            progress.record(seeded, len(seeded))

        if seed:
            # Kernels without a record (all of them in a new database; new kernels once the lowering changed) take
            # their seeds before any search, so a time limit or Ctrl-C never leaves one untuned that a seed covers.
            for task in [task for task in ordered if task.done == 0]:
                if stop.is_set():
                    break
                seed_task(task, context_of(task), _Progress(bar, [task.name], stop))
        searched: set[str] = set()
        for share in BUDGET_SHARES:
            for task in ordered:
                if stop.is_set():
                    break
                if task.short_of(share) <= 0:
                    continue
                progress = _Progress(bar, [task.name], stop)
                context = context_of(task)
                if seed and task.name not in searched:
                    seed_task(task, context, progress)
                searched.add(task.name)
                trials = task.short_of(share)
                if trials <= 0:
                    continue
                measured_before = progress.measured
                try:
                    ms.tune_tasks(
                        tasks=[context],
                        task_weights=[1.0],
                        work_dir=str(database.directory),
                        max_trials_global=trials,
                        num_trials_per_iter=min(TRIALS_PER_ROUND, trials),
                        builder=builder,
                        runner=runner,
                        database=database.database,
                        measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"), progress],
                    )
                except Exception:
                    if not stop.is_set():
                        raise
                task.done += progress.measured - measured_before
        stopped = stop.is_set()
    if not stopped:
        database.set_aside_unreplayable()
    measured = sum(database.trials_by_workload().get(workload_key(t.mod), 0) for t in tasks) - records_before
    seconds = round(time.perf_counter() - started, 1)
    timed_out = time_up.is_set()
    return TuneReport(len(tasks), total, trials_before, measured, seconds, stopped and not timed_out, timed_out)


def _seed_kernel(
    task: KernelTask,
    context: ms.TuneContext,
    device_type: str,
    database: TuningDatabase,
    runner: ms.runner.Runner,
    builder: ms.builder.Builder,
) -> list[list[float]]:
    """Measure the refitted schedules of ``task``'s seeds (:func:`.seeding.seeds_for`) and record them as its trials.

    At most the task's remaining budget; a schedule the kernel already has a
    record of (a resumed tune) is not measured again. Returns the run seconds of
    each seed measured.
    """
    workload = database.database.commit_workload(task.mod)
    known = {str(record.trace) for record in database.database.get_top_k(workload, len(database.database))}
    args_info = ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])
    measured = []
    for seed in seeds_for(task.mod, database.database)[: task.remaining]:
        schedule = refitted_schedule(task.mod, seed.record.trace, context.space_generator.postprocs)
        if schedule is None or str(schedule.trace) in known:
            continue
        (built,) = builder.build([ms.builder.BuilderInput(schedule.mod, context.target)])
        if built.error_msg is not None:
            logger.info("a seed of %s failed to build: %s", task.name, built.error_msg)
            continue
        try:
            (future,) = runner.run([ms.runner.RunnerInput(built.artifact_path, device_type, args_info)])
            ran = future.result()
        finally:
            shutil.rmtree(os.path.dirname(built.artifact_path), ignore_errors=True)
        if ran.error_msg is not None:
            logger.info("a seed of %s failed to run: %s", task.name, ran.error_msg)
            continue
        database.database.commit_tuning_record(
            ms.database.TuningRecord(schedule.trace, workload, ran.run_secs, context.target, args_info)
        )
        known.add(str(schedule.trace))
        measured.append([float(second) for second in ran.run_secs])
    return measured
