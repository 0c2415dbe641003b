"""Command line of the video application: `python -m video_understanding <command>`.

Commands: `prepare`, `train`, `evaluate`, `ablate`, `export`, `predict`.
"""

import argparse
import sys

from common.training.cli import (
    add_evaluate_arguments,
    add_export_command,
    add_override_argument,
    add_prepare_arguments,
    add_train_command,
    run_cli,
    train_command,
)
from common.training.config import arguments_for
from video_understanding.config import DataConfig

DESCRIPTION = """Video understanding from frames and sound: decode labelled clips
with PyAV into sharded TFRecords (prepare), train a fused VGG16 + Conv1D
classifier (train), measure it (evaluate), export it for TF Serving (export)
and label new clips (predict)."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m video_understanding", description=DESCRIPTION
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "prepare", help="decode clips once into sharded TFRecords (resumable)"
    )
    add_prepare_arguments(
        p,
        data_help="class folders, a CSV manifest (path,label[,split]) or UCF101 root",
        items="clips",
        shard_size=DataConfig.shard_size,
        workers_help="decoding processes (default: CPUs)",
    )
    p.add_argument("--num-frames", type=int, default=DataConfig.num_frames)
    p.add_argument("--frame-size", type=int, default=DataConfig.frame_size)
    p.add_argument("--sample-rate", type=int, default=DataConfig.sample_rate)
    p.add_argument(
        "--clip-seconds",
        type=float,
        default=DataConfig.clip_seconds,
        help="window in seconds: longer clips are cropped to it, shorter ones "
        "padded with silence (default: 10)",
    )
    p.add_argument(
        "--max-duration",
        type=float,
        default=3600.0,
        help="skip clips whose header declares more seconds (default: 3600)",
    )

    add_train_command(
        commands,
        presets="demo | demo_sync | ucf101 | kinetics",
        data_help="clips or a prepared folder (demo: generated)",
        set_example="model.fusion=graph",
    )

    p = commands.add_parser(
        "ablate", help="train every fusion and each single modality, one table"
    )
    p.add_argument(
        "--preset", default="demo", help="demo | demo_sync | ucf101 | kinetics"
    )
    p.add_argument("--data", help="clips or a prepared folder (demo: generated)")
    p.add_argument("--output", required=True, help="folder for the runs")
    add_override_argument(p, "config override applied to every variant")

    p = commands.add_parser("evaluate", help="accuracy, F1 and a confusion matrix")
    add_evaluate_arguments(
        p,
        "a prepared folder with the run's classes and clip settings (default: "
        "the one it was trained on)",
    )

    add_export_command(commands, "saved_models/video_understanding")

    p = commands.add_parser("predict", help="label clips with an exported model")
    p.add_argument("clips", nargs="+", help="video files")
    p.add_argument("--model", default="saved_models/video_understanding")
    p.add_argument("-k", type=int, default=5, help="labels per clip")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def run(args):
    if args.command == "prepare":
        from video_understanding.prepare import prepare

        settings = DataConfig(**arguments_for(DataConfig, args))
        prepare(
            args.data,
            args.output,
            settings,
            workers=args.workers,
            max_duration=args.max_duration,
        )
    elif args.command == "train":
        from video_understanding.config import get_config
        from video_understanding.train import train

        train_command(args, get_config, train)
    elif args.command == "ablate":
        from video_understanding.ablate import ablate

        ablate(args.preset, args.output, data_path=args.data, overrides=args.overrides)
    elif args.command == "evaluate":
        from video_understanding.evaluate import evaluate

        evaluate(args.run, data_path=args.data, split=args.split)
    elif args.command == "export":
        from video_understanding.export import export

        export(args.run, args.output, version=args.version, keep=args.keep)
    elif args.command == "predict":
        import json

        from video_understanding.predict import predict

        results = predict(args.clips, args.model, k=args.k)
        if args.json:
            print(json.dumps(results, indent=2))
        for result in [] if args.json else results:
            print(result["clip"])
            for item in result["top"]:
                print(f"  {item['score']:7.3f}  {item['label']}")
    return 0


def main(argv=None):
    return run_cli(build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
