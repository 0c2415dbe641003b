"""The `train` command-line options both applications share.

Light on purpose (argparse, os and the strategy names only): the CLIs parse
before TensorFlow is imported, which `--deterministic` relies on.
"""

import os

from common.training.distribute import STRATEGIES as CLI_STRATEGIES

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def add_train_command(commands, presets, data_help, set_example):
    """The `train` sub-command of both applications: `--preset --data
    --output --set --precision --strategy --deterministic --verbose`."""
    parser = commands.add_parser("train", help="train a model into a run directory")
    parser.add_argument("--preset", default="demo", help=f"{presets} (default: demo)")
    parser.add_argument("--data", help=data_help)
    parser.add_argument("--output", required=True, help="run directory, e.g. runs/NAME")
    add_override_argument(parser, f"config override, e.g. {set_example}")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="mixed precision policy (mixed_float16 on GPU only)",
    )
    parser.add_argument(
        "--strategy",
        choices=CLI_STRATEGIES,
        default="default",
        help="tf.distribute strategy: mirrored (all local GPUs) or multi_worker "
        "(MultiWorkerMirroredStrategy, cluster from TF_CONFIG)",
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="op determinism + fixed seeds: identical runs (slower)",
    )
    parser.add_argument("--verbose", type=int, default=2, help="Keras fit verbosity")
    return parser


def add_prepare_arguments(parser, data_help, items, shard_size, workers_help):
    """`--data --output --shard-size --seed --val-fraction --test-fraction
    --workers` of both applications' `prepare`."""
    parser.add_argument("--data", required=True, help=data_help)
    parser.add_argument("--output", required=True, help="folder for the shards")
    parser.add_argument(
        "--shard-size",
        type=int,
        default=shard_size,
        help=f"{items} per shard (default: {shard_size})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the train/val/test split of data that names no splits "
        "(default: 0)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the items for validation, when the data names no splits "
        "(default: 0.1)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.1,
        help="share of the items for test, when the data names no splits "
        "(default: 0.1)",
    )
    parser.add_argument("--workers", type=int, help=workers_help)


def prepare_arguments(args):
    """The keyword arguments of both applications' `prepare` that the shared
    flags give (`add_prepare_arguments`)."""
    return {
        "shard_size": args.shard_size,
        "seed": args.seed,
        "val_fraction": args.val_fraction,
        "test_fraction": args.test_fraction,
    }


def add_evaluate_arguments(parser, data_help):
    """`--run --data --split` of both applications' `evaluate`."""
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--data", help=data_help)
    parser.add_argument(
        "--split",
        choices=("train", "val", "test"),
        help="split to evaluate (default: test, or val when the data has no test "
        "split)",
    )


def add_export_command(commands, default_output):
    """The `export` sub-command of both applications: `--run --output
    --version --keep`."""
    parser = commands.add_parser(
        "export", help="export a TF Serving SavedModel version"
    )
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument(
        "--output",
        default=default_output,
        help=f"the model's folder of versions (default: {default_output})",
    )
    parser.add_argument("--version", type=int, help="version number (default: next)")
    parser.add_argument("--keep", type=int, help="keep only the newest N versions")
    return parser


def train_command(args, get_config, train):
    """Both applications' `train`: the preset with the flags' overrides,
    trained into `--output`."""
    config = get_config(args.preset, training_overrides(args))
    train(
        config,
        args.output,
        data_path=args.data,
        verbose=args.verbose,
        strategy=args.strategy,
    )


def add_override_argument(parser, help_text):
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


def training_overrides(args):
    """The `--set` overrides plus those the flags imply."""
    overrides = list(args.overrides)
    if args.precision:
        overrides.append(f"training.precision={args.precision}")
    if args.deterministic:
        overrides.append("training.deterministic=true")
        # oneDNN's kernels may sum in a different order from run to run;
        # this must be set before TensorFlow is imported.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    return overrides


# What a command reports in one line (naming the file or value) and exits 2
# on, instead of a traceback: bad values, missing or existing files, a folder
# that is not what the command needs, a worker that waited too long, a disk
# that is full (every `OSError`: the error names its file).
KNOWN_ERRORS = (ValueError, OSError)


def run_cli(build_parser, run, argv=None):
    """Parses `argv` with `build_parser()`, calls `run(args)`; a known error
    prints `error: MESSAGE` on stderr and returns 2, a stop on SIGTERM
    (`common.training.preemption`) prints what was saved and returns 143.
    Both applications' `main`."""
    import sys

    from common.training.preemption import Preempted

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KNOWN_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Preempted as stop:
        # Stopped on SIGTERM (training saved its state first): one line, and
        # 143 (128 + SIGTERM) so that a job manager restarts the command.
        print(stop, file=sys.stderr, flush=True)
        return stop.exit_code
