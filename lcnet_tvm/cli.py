"""``lcnet-tvm``: a thin argparse layer over plain functions (tests call those directly)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lcnet_tvm.compiler.gate_forms import DEFAULT_CHANNEL_BUCKETS, DEFAULT_GATE_FORM
from lcnet_tvm.errors import InputError, LcnetError
from lcnet_tvm.evaluation.systems import SYSTEMS
from lcnet_tvm.model.train_config import TrainConfig
from lcnet_tvm.support.files import write_json

#: What every command compiles for unless told otherwise (``lcnet_tvm.targets.DEFAULT_TARGET``, which
#: imports TVM: the help must not wait for it).
DEFAULT_TARGET_HELP = "x86, the host CPU"
GATES_HELP = (
    "gated (default): skipped blocks are not computed, only kept channels are; "
    "mask: compute everything, multiply by the scores; "
    "dense: the backbone without its gates (the baseline)"
)
BUCKETS_HELP = (
    f"static channel counts per channel gate: ceil(C*i/N), i=1..N (default {DEFAULT_CHANNEL_BUCKETS}); "
    "more buckets waste less work on padding channels but compile more kernels"
)
HOST_PROGRAM_HELP = (
    "main runs as one host program that calls the kernels directly, without the Relax VM's per-call dispatch and "
    "allocation (default: on CPU targets; --no-host-program runs main in the Relax VM)"
)
RPC_HELP = "a TVM RPC device: HOST:PORT (an rpc_server) or KEY@HOST:PORT (an rpc_tracker and the device key)"
RPC_TIMEOUT_HELP = "seconds one RPC session may take (default 60; an emulated device needs minutes)"
MODEL_HELP = "zoo name (lcnet_resnet20_cifar, ...) or checkpoint .pt (default: the shipped digits checkpoint)"


def compile_options(args):
    """The :class:`~lcnet_tvm.compiler.options.CompileOptions` the command line asks for (validated there)."""
    from lcnet_tvm.compiler.options import CompileOptions  # noqa: PLC0415 (keep `--help` fast: TVM imports take seconds)
    from lcnet_tvm.targets import DEFAULT_TARGET  # noqa: PLC0415

    return CompileOptions(
        getattr(args, "target", None) or DEFAULT_TARGET,
        batch_size=getattr(args, "batch_size", 1),
        gate_form=args.gates,
        channel_buckets=args.channel_buckets,
        database=getattr(args, "db", None),
        host_program=getattr(args, "host_program", None),
    )


def cmd_demo(args) -> None:
    from lcnet_tvm.evaluation.demo import format_report, run_demo  # noqa: PLC0415

    report = run_demo(args.model, compile_options(args), args.cifar10, args.latency_iterations)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)


def cmd_bench(args) -> None:
    from lcnet_tvm.evaluation.bench import BenchOptions, format_bench, plot_bench, run_bench  # noqa: PLC0415
    from lcnet_tvm.model.checkpoint import resolve_model  # noqa: PLC0415

    options = BenchOptions(
        target_name=args.target,
        database_dir=args.db,
        iterations=args.iterations,
        batch=args.batch,
        flops_fractions=args.flops_fraction or [None],
        channel_buckets=args.channel_buckets,
        systems=args.systems.split(",") if args.systems else SYSTEMS,
        profile=args.profile,
        host_program=args.host_program,
    )
    report = run_bench(resolve_model(args.model), options)
    print(format_bench(report))
    if args.json:
        write_json(args.json, report)
    if args.plot:
        plot_bench(report, args.plot)
    if report["failed_points"]:
        failed = [str(point["flops_fraction"]) for point in report["failed_points"]]
        raise LcnetError(
            f"operating point{'s' if len(failed) > 1 else ''} {', '.join(failed)} could not be measured "
            "(see FAILED above); the others are reported"
        )
    rejected = sorted({name for point in report["points"] for name in point["rejected"]})
    if rejected:
        raise LcnetError(
            f"{', '.join(rejected)} computed logits other than eager's and {'were' if len(rejected) > 1 else 'was'} "
            "not timed (see NOT TIMED above); the other systems are reported"
        )


def format_gates(gates, gate_form: str | None = None) -> str:
    """The gate table of :class:`~lcnet_tvm.runtime.artifact.GateRecord` s; with ``gate_form`` (after
    compiling), also which understood gates were not lowered."""
    lines = [f"{'gate':<28} {'kind':<8} {'convs':>5} {'dense MFLOPs':>12}  controls (Relax variables)"]
    for gate in gates:
        if not gate.understood:
            controls = f"left in mask form: {gate.problem}"
        elif gate_form == "gated" and not gate.lowered:
            controls = "left in mask form by the lowering pass (its warning says why)"
        else:
            controls = ", ".join(gate.controls)
        lines.append(
            f"{gate.name:<28} {gate.kind:<8} {gate.controlled_convs:>5} {gate.dense_flops / 1e6:>12.2f}  {controls}"
        )
    return "\n".join(lines)


def cmd_compile(args) -> None:
    from lcnet_tvm.compiler.driver import compile_model, explain_model  # noqa: PLC0415
    from lcnet_tvm.model.checkpoint import resolve_model  # noqa: PLC0415
    from lcnet_tvm.runtime.compiled_model import check_artifact_destination  # noqa: PLC0415
    from lcnet_tvm.schedules.shipped import records_for, warn_untuned  # noqa: PLC0415

    options = compile_options(args)
    loaded = resolve_model(args.model, args.input_size)
    if args.output is None:
        if not args.explain:
            raise LcnetError("compile needs -o DIR (or --explain to only show the gate analysis)")
        print(format_gates(explain_model(loaded.model, loaded.config.input_shape)))
        return
    check_artifact_destination(args.output)
    shipped = records_for(loaded.name, args.target) if args.db is None else None
    if shipped is not None:  # the shipped records, when they are for the target asked (by default: theirs)
        options = options.replace(target=shipped[0], database=str(shipped[1]))
    compiled = compile_model(loaded.model, loaded.config.input_shape, options, name=loaded.name, source=loaded.source)
    if options.database is None and compiled.metadata.untuned_kernels:
        warn_untuned(loaded.name, compiled.metadata.untuned_kernels, args.target)
    directory = compiled.save(args.output)
    if args.explain:
        print(format_gates(compiled.metadata.gates, compiled.metadata.gate_form))
    tuning = compiled.tuning
    print(
        f"wrote {directory}: {loaded.name} for {options.target.name} {options.target_config}, input "
        f"{tuple(compiled.input_shape)}, {len(compiled.gates)} gates, {tuning.kernels} kernels "
        f"({tuning.tuned} tuned, {tuning.kernels - tuning.tuned} untuned)"
    )


def _remote(args):
    from lcnet_tvm.targets.remote import RemoteDevice  # noqa: PLC0415

    return RemoteDevice.parse(args.rpc, args.rpc_timeout) if args.rpc else None


def cmd_tune(args) -> None:
    from lcnet_tvm.model.checkpoint import resolve_model  # noqa: PLC0415
    from lcnet_tvm.schedules.tune import tune_model  # noqa: PLC0415

    if args.time_limit is not None and not args.time_limit > 0:
        raise LcnetError(f"--time-limit must be positive minutes, got {args.time_limit:g}")
    options = compile_options(args)
    loaded = resolve_model(args.model, args.input_size)
    guide_inputs = None
    if args.guided or args.flops_fraction is not None:
        from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs  # noqa: PLC0415
        from lcnet_tvm.model.checkpoint import dataset_for  # noqa: PLC0415
        from lcnet_tvm.model.flops import FlopsCounter  # noqa: PLC0415

        guide_inputs = calibration_inputs(dataset_for(loaded).x_test)
    if args.flops_fraction is not None:
        counter = FlopsCounter.from_model(loaded.model, loaded.config.input_shape)
        shift = calibrate_gates(loaded.model, guide_inputs, args.flops_fraction, counter)
        print(f"gates shifted by {shift:+.3f}: decisions call for about {args.flops_fraction} of dense FLOPs")
    report = tune_model(
        loaded.model, loaded.config.input_shape, options, args.trials, remote=_remote(args), guide_inputs=guide_inputs,
        build_timeout=args.build_timeout, seed=args.seeding,
        time_limit=None if args.time_limit is None else args.time_limit * 60,
    )
    if report.interrupted:
        state = "stopped by Ctrl-C; every measured record is kept"
    elif report.time_limit_reached:
        state = f"stopped at the time limit ({args.time_limit:g} min); every measured record is kept, the same command resumes"
    else:
        state = "done"
    print(
        f"{state}: {report.kernels} kernels, {report.trials_before + report.trials_measured} of {report.trials_budget} "
        f"trials in {args.db} ({report.trials_before} from earlier runs, {report.trials_measured} measured now in "
        f"{report.seconds:.0f} s); compile with `lcnet-tvm compile --db {args.db}`"
    )
    if report.interrupted:
        raise KeyboardInterrupt


def _load_input(path: str):
    import numpy as np  # noqa: PLC0415

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"input file {path!r} not found") from None
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"cannot read {path!r} as a .npy array ({error}); save it with numpy.save") from None


def cmd_run(args) -> None:
    from lcnet_tvm.runtime.compiled_model import CompiledModel  # noqa: PLC0415

    compiled = CompiledModel.load(args.artifact, _remote(args))
    result = compiled.run(_load_input(args.input))
    gates = compiled.gates
    fractions = result.executed_flops / compiled.dense_flops
    decided = result.decided_flops / compiled.dense_flops
    rows = []
    for index in range(len(result.logits)):
        layers = "".join(
            "1" if keep[index, 0] else "0" for gate, keep in zip(gates, result.decisions) if gate.kind == "layer"
        )
        channels = " ".join(
            f"{int(keep[index].sum())}/{gate.channels}"
            for gate, keep in zip(gates, result.decisions)
            if gate.kind == "channel"
        )
        rows.append(
            {
                "index": index,
                "prediction": int(result.predictions[index]),
                "blocks_kept": layers,
                "channels_kept": channels,
                "executed_flops_fraction": float(fractions[index]),
                "decided_flops_fraction": float(decided[index]),
            }
        )
        print(
            f"sample {index}: prediction {rows[-1]['prediction']}  blocks kept [{layers}]  channels kept "
            f"[{channels}]  FLOPs executed {fractions[index]:.3f} of dense (decisions alone: {decided[index]:.3f})"
        )
    if args.json:
        write_json(args.json, {"artifact": str(args.artifact), "samples": rows})


def cmd_train(args) -> None:
    import torch  # noqa: PLC0415

    from lcnet_tvm.model.checkpoint import SHIPPED_CHECKPOINT, save_checkpoint  # noqa: PLC0415
    from lcnet_tvm.model.data import load_cifar10, load_digits_for_training  # noqa: PLC0415
    from lcnet_tvm.model.resnet import LCResNet, zoo_config  # noqa: PLC0415
    from lcnet_tvm.model.sweep import parse_fractions  # noqa: PLC0415
    from lcnet_tvm.model.train import train  # noqa: PLC0415

    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        target_flops=args.target_flops,
        flops_weight=args.flops_weight,
        normalised_gates=args.normalised_gates,
        difficulty_spread=args.difficulty_spread,
        seed=args.seed,
    )
    name = args.model or "lcnet_resnet20_cifar"
    config = zoo_config(name)
    fractions = parse_fractions(args.sweep) if args.sweep is not None else None  # checked before data loads
    if args.cifar10 and args.hard_copies:
        raise LcnetError("--hard-copies makes harder copies of the digits; leave it out with --cifar10")
    if args.cifar10:
        dataset, recorded = load_cifar10(args.cifar10), {"name": "cifar10"}
    else:
        dataset, recorded = load_digits_for_training(config.input_size, config.in_channels, args.seed, args.hard_copies)
    config = config.replace(num_classes=dataset.num_classes)
    command = " ".join(["lcnet-tvm", *sys.argv[1:]])
    if fractions is not None:
        _train_sweep(fractions, Path(args.output or "sweep"), config, dataset, train_config, command)
        return
    torch.manual_seed(args.seed)
    model = LCResNet(config)
    metrics = train(model, dataset, train_config)
    output = Path(args.output or SHIPPED_CHECKPOINT.name)
    info = {"model": name, "dataset": recorded, "command": command, **metrics}
    save_checkpoint(output, name, model, info)
    subsets = "".join(
        f"; {subset} images: accuracy {metrics[subset]['accuracy']:.2%}, FLOPs {metrics[subset]['executed_flops_fraction']:.3f}"
        for subset in ("clean", "hard")
        if subset in metrics
    )
    print(
        f"wrote {output}: held-out accuracy {metrics['accuracy']:.2%}, executed FLOPs "
        f"{metrics['executed_flops_fraction']:.3f} of dense ({metrics['dense_gflops'] * 1e3:.1f} MFLOPs), "
        f"{metrics['gates']['distinct_layer_patterns']} distinct block-skip patterns{subsets}"
    )


def _train_sweep(fractions, directory: Path, config, dataset, train_config: TrainConfig, command: str) -> None:
    from lcnet_tvm.model.sweep import format_sweep, plot_sweep, run_sweep  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    points = run_sweep(fractions, config, dataset, train_config)
    write_json(
        directory / "sweep.json",
        {"command": command, "dataset": dataset.name, "model": config.to_json(), "train_config": vars(train_config),
         "points": [point.to_json() for point in points]},
    )
    plot_sweep(points, str(directory / "sweep.png"), f"{dataset.name}: accuracy against executed FLOPs")
    print(format_sweep(points))
    print(f"wrote {directory / 'sweep.json'} and {directory / 'sweep.png'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lcnet-tvm", description="Compile dynamic-inference CNNs (LC-Net) with TVM")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the compiler does")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="compile the shipped checkpoint, run it on held-out digits, compare with eager")
    demo.add_argument("--model", help=MODEL_HELP)
    demo.add_argument("--cifar10", metavar="DIR", help="CIFAR-10 python-pickle directory (CIFAR-10 checkpoints)")
    demo.add_argument("--latency-iterations", type=int, default=30, metavar="N")
    demo.add_argument("--gates", default=DEFAULT_GATE_FORM, help=GATES_HELP)
    demo.add_argument("--channel-buckets", type=int, default=DEFAULT_CHANNEL_BUCKETS, metavar="N", help=BUCKETS_HELP)
    demo.add_argument("--host-program", action=argparse.BooleanOptionalAction, help=HOST_PROGRAM_HELP)
    demo.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    demo.set_defaults(handler=cmd_demo)

    compile_ = commands.add_parser("compile", help="compile a model into an artifact directory")
    compile_.add_argument("--model", help=MODEL_HELP)
    compile_.add_argument("--target", help=f"compilation target (default: {DEFAULT_TARGET_HELP})")
    compile_.add_argument("--batch-size", type=int, default=1, help="compiled batch size (default 1)")
    compile_.add_argument("--input-size", type=int, help="input resolution for a zoo model (default: its own)")
    compile_.add_argument("--gates", default=DEFAULT_GATE_FORM, help=GATES_HELP)
    compile_.add_argument("--channel-buckets", type=int, default=DEFAULT_CHANNEL_BUCKETS, metavar="N", help=BUCKETS_HELP)
    compile_.add_argument("--host-program", action=argparse.BooleanOptionalAction, help=HOST_PROGRAM_HELP)
    compile_.add_argument("--db", metavar="DIR", help="tuning database (from `lcnet-tvm tune`) to apply")
    compile_.add_argument("-o", "--output", metavar="DIR", help="artifact directory to write")
    compile_.add_argument(
        "--explain", action="store_true", help="show each gate, the ops it controls and their dense FLOPs"
    )
    compile_.set_defaults(handler=cmd_compile)

    tune = commands.add_parser("tune", help="tune every kernel of the compiled model (MetaSchedule + XGBoost)")
    tune.add_argument("--model", help=MODEL_HELP)
    tune.add_argument("--target", help=f"target to tune for (default: {DEFAULT_TARGET_HELP})")
    tune.add_argument("--trials", type=int, required=True, help="measured candidates in all, spread by runtime share")
    tune.add_argument("--db", required=True, metavar="DIR", help="tuning database to write (resumed if it exists)")
    tune.add_argument("--batch-size", type=int, default=1, help="compiled batch size (default 1)")
    tune.add_argument("--input-size", type=int, help="input resolution for a zoo model (default: its own)")
    tune.add_argument("--gates", default=DEFAULT_GATE_FORM, help=GATES_HELP)
    tune.add_argument("--channel-buckets", type=int, default=DEFAULT_CHANNEL_BUCKETS, metavar="N", help=BUCKETS_HELP)
    tune.add_argument("--rpc", metavar="KEY@HOST:PORT", help="measure on the devices behind this RPC tracker")
    tune.add_argument(
        "--flops-fraction", type=float, metavar="F",
        help="tune for an operating point: shift the gates as `bench --flops-fraction F` does and spread the "
        "budget by the time each kernel takes there on held-out inputs, with the records the database holds "
        "(default: by calls x FLOPs, every kernel counting as always run)",
    )
    tune.add_argument(
        "--guided", action="store_true",
        help="spread the budget by the time each kernel takes on held-out inputs with the records the database "
        "holds, at the model's own gates",
    )
    tune.add_argument("--rpc-timeout", type=float, default=60.0, metavar="S", help=RPC_TIMEOUT_HELP)
    tune.add_argument(
        "--build-timeout", type=float, default=60.0, metavar="S",
        help="seconds one candidate's build may take before it is stopped and counted as a failed trial (default 60)",
    )
    tune.add_argument(
        "--time-limit", type=float, metavar="MIN",
        help="stop tuning after MIN minutes, after the round in flight, as Ctrl-C does (every measured record is "
        "kept; the same command resumes); the largest budgets are tuned first",
    )
    tune.add_argument(
        "--no-seeding", dest="seeding", action="store_false",
        help="search each kernel from scratch (default: start from the refitted best schedules of tuned kernels of "
        "its form, e.g. a channel bucket from the full convolution)",
    )
    tune.set_defaults(handler=cmd_tune)

    bench = commands.add_parser(
        "bench",
        help="latency side by side: eager PyTorch (dense, mask, skipping, torch.compile), TVM (dense, mask, gated) "
        "and ONNX exports in ONNX Runtime and OpenVINO (dense, mask), each system in a process of its own"
    )
    bench.add_argument("--model", help=MODEL_HELP)
    bench.add_argument("--target", help="target (default: the shipped records' target, or x86)")
    bench.add_argument("--db", metavar="DIR", help="tuning database (default: the shipped records for the model)")
    bench.add_argument("--batch", type=int, default=1, help="samples per call (default 1)")
    bench.add_argument("--iterations", type=int, default=100, metavar="N", help="timed calls per system, systems taking turns (default 100)")
    bench.add_argument(
        "--flops-fraction", type=float, nargs="+", metavar="F",
        help="operating points: shift every gate's threshold so decisions call for F of the dense FLOPs "
        "(several values sweep; default: the model's own gates)",
    )
    bench.add_argument("--systems", metavar="A,B", help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all)")
    bench.add_argument("--profile", action="store_true", help="break tvm-gated's time down by kernel and category")
    bench.add_argument("--channel-buckets", type=int, default=DEFAULT_CHANNEL_BUCKETS, metavar="N", help=BUCKETS_HELP)
    bench.add_argument("--host-program", action=argparse.BooleanOptionalAction, help=HOST_PROGRAM_HELP)
    bench.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    bench.add_argument("--plot", metavar="OUT.png", help="also plot latency against executed FLOPs per system")
    bench.set_defaults(handler=cmd_bench)

    run = commands.add_parser("run", help="run a compiled artifact on an NCHW float32 .npy batch")
    run.add_argument("artifact", metavar="DIR")
    run.add_argument("--input", required=True, metavar="FILE.npy")
    run.add_argument("--json", metavar="OUT", help="also write the per-sample results as JSON")
    run.add_argument("--rpc", metavar="ADDRESS", help=RPC_HELP)
    run.add_argument("--rpc-timeout", type=float, default=60.0, metavar="S", help=RPC_TIMEOUT_HELP)
    run.set_defaults(handler=cmd_run)

    train = commands.add_parser("train", help="train an LC-Net with a FLOPs penalty")
    train.add_argument("--model", help="zoo architecture (default lcnet_resnet20_cifar)")
    train.add_argument("--cifar10", metavar="DIR", help="train on CIFAR-10 from this python-pickle directory "
                       "(default: scikit-learn's bundled digits)")
    defaults = TrainConfig()
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--lr", type=float, default=defaults.learning_rate)
    train.add_argument(
        "--target-flops", type=float, default=defaults.target_flops, help="executed FLOPs target, fraction of dense"
    )
    train.add_argument("--flops-weight", type=float, default=defaults.flops_weight, help="weight of the FLOPs penalty")
    train.add_argument(
        "--normalised-gates", action="store_true",
        help="batch-normalise gate logits while training (folded into the gates after): block decisions that vary "
        "with the input, at a cost in accuracy so far (results/training/README.md)",
    )
    train.add_argument(
        "--difficulty-spread", type=float, default=defaults.difficulty_spread, metavar="S",
        help="a FLOPs target per sample: target + S * (r - 0.5), r the rank of its loss in the batch (0 easiest), "
        "so the gates learn to spend more on hard inputs; default 0: one target for the batch mean",
    )
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument(
        "--hard-copies", type=int, default=0, metavar="N",
        help="digits: add N harder-to-read copies of each image (noise, blur, shift, shrink or occlusion at "
        "strength 1-3, recorded per image); default 0: the clean digits only (the shipped checkpoint used 2)",
    )
    train.add_argument(
        "--sweep", metavar="F1,F2,...",
        help="instead of one checkpoint, train LC-Net and two static baselines (a learned static mask, a thinner "
        "ResNet) at each FLOPs fraction (in place of --target-flops); writes sweep.json and sweep.png to -o DIR "
        "(default sweep/)",
    )
    train.add_argument(
        "-o", "--output", metavar="PATH",
        help="checkpoint to write (a .json lands beside it); with --sweep, the output directory",
    )
    train.set_defaults(handler=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        args.handler(args)
    except LcnetError as error:
        print(f"lcnet-tvm: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lcnet-tvm: interrupted", file=sys.stderr)
        return 130
    except OSError as error:  # a file that could not be read or written, named by the OS
        print(f"lcnet-tvm: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
