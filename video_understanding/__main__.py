"""Command line of the video application: `python -m video_understanding <command>`.

Available now: `prepare`. Training, evaluation, ablation, export and predict
are being built (see the video understanding issue).
"""

import argparse
import sys

DESCRIPTION = """Video understanding from frames and sound: decode labelled clips
with PyAV into sharded TFRecords (prepare)."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m video_understanding", description=DESCRIPTION
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "prepare", help="decode clips once into sharded TFRecords (resumable)"
    )
    p.add_argument(
        "--data",
        required=True,
        help="class folders, a CSV manifest (path,label[,split]) or UCF101 root",
    )
    p.add_argument("--output", required=True, help="folder for the shards")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--frame-size", type=int, default=112)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument(
        "--clip-seconds", type=float, help="window length (default: whole clip)"
    )
    p.add_argument("--shard-size", type=int, default=64, help="clips per shard")
    p.add_argument("--workers", type=int, help="decoding processes (default: CPUs)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "prepare":
            from video_understanding.prepare import prepare

            prepare(
                args.data,
                args.output,
                num_frames=args.num_frames,
                frame_size=args.frame_size,
                sample_rate=args.sample_rate,
                clip_seconds=args.clip_seconds,
                shard_size=args.shard_size,
                workers=args.workers,
            )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
