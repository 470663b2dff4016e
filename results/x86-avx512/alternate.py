"""Compiled models timed alternately in one process: the A/B method of the scripts in this folder's subfolders
(import it with ``sys.path.insert(0, <this folder>)``)."""
import time

import numpy as np


def median_run_ms(model, batches, passes):
    """Median ms of ``model.run`` per inference over ``passes`` passes over ``batches`` (a whole ``run()`` per
    inference, as the bench's worker calls it)."""
    seconds = []
    for _ in range(passes):
        for batch in batches:
            started = time.perf_counter()
            model.run(batch)
            seconds.append(time.perf_counter() - started)
    return 1e3 * np.median(seconds)


def alternate(models, batches, rounds, passes, warm_passes=2):
    """Each model of ``models`` (name -> CompiledModel) warmed with ``warm_passes``, then ``rounds`` rounds in
    which each takes a turn of ``passes`` passes; per name, its rounds' medians in ms."""
    for model in models.values():
        median_run_ms(model, batches, warm_passes)
    medians = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            medians[name].append(median_run_ms(model, batches, passes))
    return medians
