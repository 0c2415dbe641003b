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
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        help="Keras fit output: 0 none, 1 a progress bar, 2 one line per epoch "
        "(default: 1 on a terminal, else 2)",
    )
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
        verbose=fit_verbosity(args.verbose),
        strategy=args.strategy,
    )


def fit_verbosity(verbose, stream=None):
    """Keras `fit` verbosity: `verbose` when given, else a progress bar (1)
    when `stream` (stdout) is a terminal and one line per epoch (2) when it
    is a file or a pipe, where a bar would print a line per update."""
    import sys

    if verbose is not None:
        return verbose
    stream = sys.stdout if stream is None else stream
    return 1 if stream.isatty() else 2


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


def quiet_tensorflow():
    """Loads TensorFlow without its C++ log lines: the start-up banners its
    libraries print as they load (CUDA drivers not found, CPU instructions)
    go to /dev/null, and `TF_CPP_MIN_LOG_LEVEL=3` keeps the later ones (a
    failed `cuInit` on a machine without a GPU, oneDNN notes) out. Python
    errors and warnings still show. Nothing changes when TensorFlow is
    already loaded or `TF_CPP_MIN_LOG_LEVEL` is set (the user's choice)."""
    import sys

    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def run_cli(build_parser, run, argv=None):
    """Parses `argv` with `build_parser()`, calls `run(args)`; a known error
    prints `error: MESSAGE` on stderr and returns 2, a stop on SIGTERM
    (`common.training.preemption`) prints what was saved and returns 143.
    TensorFlow is loaded quietly first (`quiet_tensorflow`) unless
    `--tf-logs` (before the command) asks for its log lines. Both
    applications' `main`."""
    import sys

    from common.training.preemption import Preempted

    parser = build_parser()
    parser.add_argument(
        "--tf-logs",
        action="store_true",
        help="show TensorFlow's start-up and C++ log lines (hidden by default)",
    )
    args = parser.parse_args(argv)
    if getattr(args, "deterministic", False):
        # before TensorFlow loads: oneDNN's kernels may sum in any order
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if not args.tf_logs:
        quiet_tensorflow()
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
