"""The main job: compile the shipped checkpoint, run it on held-out digits, compare with eager."""

from __future__ import annotations

import logging

import numpy as np
import torch

from lcnet_tvm.compiler.driver import compile_model
from lcnet_tvm.compiler.options import CompileOptions
from lcnet_tvm.evaluation.timing import in_process, measure_interleaved
from lcnet_tvm.evaluation.verify import (
    LOGIT_TOLERANCE,
    ROUNDING_ALLOWANCE,
    compare_with_eager,
    eager_reference,
    in_batches,
)
from lcnet_tvm.model.checkpoint import dataset_for, resolve_model
from lcnet_tvm.model.data import Dataset
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import WithGateScores
from lcnet_tvm.model.train import evaluate, gate_statistics
from lcnet_tvm.runtime.compiled_model import CompiledModel
from lcnet_tvm.schedules.shipped import target_and_records, warn_untuned

logger = logging.getLogger(__name__)


def measure_latency(
    compiled: dict[str, CompiledModel], model: torch.nn.Module, sample: torch.Tensor, iterations: int
) -> dict:
    """Latency of eager mask form and of each compiled system, interleaved in one run."""
    wrapped = WithGateScores(model).eval()
    array = sample.numpy()

    def eager():
        with torch.inference_mode():
            wrapped(sample)

    systems = {"eager-mask": in_process(eager)}
    systems.update({f"tvm-{form}": in_process(lambda system=system: system.run(array)) for form, system in compiled.items()})
    return measure_interleaved(systems, iterations)


def run_demo(
    model_spec: str | None = None,
    options: CompileOptions | None = None,
    cifar10_dir: str | None = None,
    latency_iterations: int = 30,
) -> dict:
    """Compile with ``options`` (gate form, buckets; the target and records are the shipped ones that run
    here) and check it against eager; time it beside eager (and mask form)."""
    options = options or CompileOptions()
    loaded = resolve_model(model_spec)
    dataset = dataset_for(loaded, cifar10_dir)
    model = loaded.model.eval()
    counter = FlopsCounter.from_model(model, loaded.config.input_shape)
    eager = evaluate(model, dataset.x_test, dataset.y_test, counter)
    target_name, records = target_and_records(loaded.name, options.target.name)
    options = options.replace(target=target_name, database=records)
    systems = {
        form: compile_model(
            model, loaded.config.input_shape, options.replace(gate_form=form), name=loaded.name, source=loaded.source
        )
        for form in dict.fromkeys(["mask", options.gate_form])
    }
    compiled = systems[options.gate_form]
    if records is None:
        warn_untuned(loaded.name, compiled.metadata.untuned_kernels)
    result, agree = compare_with_eager(compiled, model, dataset.x_test)
    # Rounding is measured per batch, as eager ran them: a batch where float64 decides otherwise is left out.
    reference = eager_reference(model, in_batches(dataset.x_test.numpy()))
    fractions = result.executed_flops / counter.dense_flops
    decided = result.decided_flops / counter.dense_flops
    correct = result.predictions == dataset.y_test.numpy()
    latency = measure_latency(systems, model, dataset.x_test[:1], latency_iterations)
    tuning = {f"tvm-{form}": system.tuning.to_json() for form, system in systems.items()}
    return {
        "model": loaded.name,
        "source": loaded.source,
        "gate_form": options.gate_form,
        "channel_buckets": options.channel_buckets,
        "dataset": dataset.name,
        "samples": len(dataset.y_test),
        "target": compiled.metadata.target,
        "kernels": compiled.tuning.kernels,
        "kernels_tuned": compiled.tuning.tuned,
        "tuning_trials": compiled.tuning.trials,
        "accuracy": float(correct.mean()),
        "eager_accuracy": eager["accuracy"],
        "dense_gflops": counter.dense_flops / 1e9,
        "executed_flops_fraction": float(fractions.mean()),
        "executed_flops_fraction_range": [float(fractions.min()), float(fractions.max())],
        "decided_flops_fraction": float(decided.mean()),
        "eager_executed_flops_fraction": eager["executed_flops_fraction"],
        "by_difficulty": split_by_difficulty(dataset, correct, fractions),
        "gates": gate_statistics(compiled.gates, result.decisions),
        **agree.to_json(),
        "eager_float32_rounding": reference.rounding,
        "logits_tolerance": reference.tolerance,
        "latency_batch1": latency,
        "tuning": tuning,
        "tuning_database": records,
    }


def split_by_difficulty(dataset: Dataset, correct: np.ndarray, fractions: np.ndarray) -> dict | None:
    """The compiled code's accuracy and mean executed FLOPs on the clean and on the hard held-out images."""
    subsets = {name: mask.numpy() for name, mask in dataset.held_out_by_difficulty().items()}
    return {
        name: {
            "samples": int(subset.sum()),
            "accuracy": float(correct[subset].mean()),
            "executed_flops_fraction": float(fractions[subset].mean()),
        }
        for name, subset in subsets.items()
    } or None


def format_report(report: dict) -> str:
    gates = report["gates"]
    lines = [
        f"model      {report['model']} ({report['source']})",
        f"data       {report['dataset']} held-out split, {report['samples']} images",
        f"target     {report['target']}: {report['kernels']} kernels, {report['kernels_tuned']} tuned "
        f"({report['tuning_trials']} trials measured for them)",
        f"accuracy   compiled {report['accuracy']:.2%}, eager {report['eager_accuracy']:.2%}",
        f"FLOPs      dense {report['dense_gflops'] * 1e3:.1f} MFLOPs/image; executed by the compiled code, mean "
        f"{report['executed_flops_fraction']:.3f} of dense (per image {report['executed_flops_fraction_range'][0]:.3f}"
        f"..{report['executed_flops_fraction_range'][1]:.3f}); the gate decisions alone call for "
        f"{report['decided_flops_fraction']:.3f}",
    ]
    if report["by_difficulty"]:
        lines.append("by image   " + "; ".join(
            f"{name} ({split['samples']}): accuracy {split['accuracy']:.2%}, FLOPs {split['executed_flops_fraction']:.3f}"
            for name, split in report["by_difficulty"].items()
        ))
    lines += [
        f"gates      over {report['samples']} images: {gates['distinct_decision_patterns']} distinct decision patterns "
        f"(blocks and channels), {gates['distinct_layer_patterns']} distinct block-skip patterns; "
        f"blocks kept {_percent(gates['layer_kept_fraction'])}, channels kept {_percent(gates['channel_kept_fraction'])}",
    ]
    lines += [
        f"  {gate['name']:<28} {gate['kind']:<8} kept {gate['kept_fraction']:6.1%}   "
        f"std over images {gate['kept_fraction_std_over_samples']:.3f}"
        for gate in gates["per_gate"]
    ]
    latency = report["latency_batch1"]
    eager_ms = latency["eager-mask"]["median_ms"]
    lines += [
        f"agreement  ({report['gate_form']} gates) max |logit diff| {report['max_abs_error']:.2e}, scaled "
        f"{report['max_scaled_error']:.2e} ({_within(report)}); gate decisions agree {report['gate_agreement']:.4%} "
        f"({report['threshold_ties']} ties at the threshold); predictions equal {report['prediction_agreement']:.2%}",
        f"latency    batch 1, median (p90) of {latency['eager-mask']['iterations']} runs, systems taking turns "
        f"(records: {report['tuning_database'] or 'none'}):",
    ]
    lines += [
        f"  {name:<12} {timing['median_ms']:8.2f} ms ({timing['p90_ms']:.2f})  {timing['median_ms'] / eager_ms:5.2f}x eager"
        f"{_tuning_label(report['tuning'].get(name))}"
        for name, timing in latency.items()
    ]
    return "\n".join(lines)


def _within(report: dict) -> str:
    verdict = "within" if report["max_scaled_error"] <= report["logits_tolerance"] else "BEYOND"
    return (
        f"{verdict} the allowed {report['logits_tolerance']:.1e}: {LOGIT_TOLERANCE:.0e}, or {ROUNDING_ALLOWANCE}x eager's "
        f"own float32 rounding {report['eager_float32_rounding']:.1e} (against float64 and weight-ulp twins) where larger"
    )


def _tuning_label(summary: dict | None) -> str:
    if summary is None:
        return ""
    if not summary["tuned"]:
        return f"   kernels untuned (0 of {summary['kernels']} tuned, 0 trials)"
    return f"   {summary['tuned']} of {summary['kernels']} kernels tuned ({summary['trials']} trials)"


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"
