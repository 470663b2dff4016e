"""Median ms per ``CompiledModel.run`` call of a compiled artifact, in the ways README.md's experiments ran it.

Usage: python3 two_speeds.py ARTIFACT [--inputs INPUTS.pt] [--loads N] [--repeats R] [--calls C] [--threads]
       [--mmap-pad BYTES] [--pin-before-import CPU | --pin-after-start CPU]

Without ``--inputs`` every call takes one seeded random CIFAR-sized image (the dense artifact), with it the saved
held-out images in turn. Each of ``--loads`` loads of the artifact (all kept alive) is warmed up, then timed in
``--repeats`` runs of ``--calls`` calls; one line of medians per process.
"""
import argparse, glob, mmap, os, time

import numpy as np


def held_out(path: str | None) -> list[np.ndarray]:
    """The saved images, one batch of one each; or one seeded random CIFAR-sized image."""
    if path is None:
        return [np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")]
    import torch
    images = torch.load(path).numpy()
    return [images[i : i + 1] for i in range(len(images))]


def warmed(artifact: str, inputs: list[np.ndarray]):
    from lcnet_tvm.runtime.compiled_model import CompiledModel
    model = CompiledModel.load(artifact)
    for x in inputs * 5 if len(inputs) > 1 else inputs * 200:
        model.run(x)
    return model


def median_ms(model, inputs: list[np.ndarray], calls: int) -> float:
    times = []
    for k in range(calls):
        x = inputs[k % len(inputs)]
        start = time.perf_counter(); model.run(x); times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def threads() -> str:
    """Each thread of this process: its allowed CPUs, the CPU it last ran on, its user time in ticks."""
    info = []
    for task in sorted(glob.glob("/proc/self/task/*")):
        stat = open(task + "/stat").read().rsplit(")", 1)[1].split()
        info.append(f"{sorted(os.sched_getaffinity(int(task.rsplit('/', 1)[1])))}@{stat[36]} u{stat[11]}")
    return " ".join(info)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("artifact")
    parser.add_argument("--inputs")
    parser.add_argument("--loads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--threads", action="store_true", help="print each thread's CPUs and user time")
    parser.add_argument("--mmap-pad", type=int, default=0, help="map this many bytes before anything else")
    parser.add_argument("--pin-before-import", type=int, help="the process on this CPU before TVM starts its pool")
    parser.add_argument("--pin-after-start", type=int, help="the main thread on this CPU once the pool runs")
    options = parser.parse_args()
    pad = mmap.mmap(-1, options.mmap_pad) if options.mmap_pad else None
    if options.pin_before_import is not None:
        os.sched_setaffinity(0, {options.pin_before_import})
    inputs = held_out(options.inputs)
    loads, medians = [], []
    for _ in range(options.loads):
        loads.append(warmed(options.artifact, inputs))
        if options.pin_after_start is not None:
            os.sched_setaffinity(0, {options.pin_after_start})
        medians += [f"{median_ms(loads[-1], inputs, options.calls):.3f}" for _ in range(options.repeats)]
    print(" ".join(medians), threads() if options.threads else "")
