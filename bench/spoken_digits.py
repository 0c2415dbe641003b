"""The audio tower alone on real speech: Free Spoken Digit Dataset
recordings (`recordings/{digit}_{speaker}_{take}.wav`), each written as an mp4
clip (its sound as AAC, two blank frames) and classified by
`video_understanding` with `model.modalities=audio` and the demo budget.

    python bench/spoken_digits.py --recordings PATH/recordings [--quick]

Two splits: the dataset's own (takes 0-4 test, the rest train, both
speakers) and cross-speaker (trained on one speaker, tested on the other).
Each is trained with the default audio learning-rate multiplier and with 1
(the single VGG16 learning rate) for contrast. Not part of `make bench`: the
recordings are not shipped with the project.
"""

import csv
import os
import sys
import tempfile
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, result, write_report  # noqa: E402


def read_wav(path):
    with wave.open(path, "rb") as f:
        rate, width = f.getframerate(), f.getsampwidth()
        raw = f.readframes(f.getnframes())
        channels = f.getnchannels()
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
    samples = np.frombuffer(raw, dtype).astype(np.float32)
    if width == 1:
        samples = samples - 128.0
    samples = samples / float(2 ** (8 * width - 1))
    return samples.reshape(-1, channels).mean(axis=1), rate


def write_clips(recordings, output, limit=None):
    """`[(clip path, digit, speaker, take)]`, one mp4 per recording."""
    from common.data.video import write_clip

    rows = []
    names = sorted(n for n in os.listdir(recordings) if n.endswith(".wav"))
    for name in names[:limit]:
        digit, speaker, take = os.path.splitext(name)[0].split("_")
        audio, rate = read_wav(os.path.join(recordings, name))
        path = os.path.join(output, digit, name.replace(".wav", ".mp4"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.isfile(path):
            write_clip(path, np.zeros((2, 32, 32, 3), np.uint8), 2, audio=audio,
                       sample_rate=rate)  # fmt: skip
        rows.append((path, digit, speaker, int(take)))
    return rows


def write_manifest(path, rows, split_of):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        for clip, digit, speaker, take in rows:
            split = split_of(speaker, take)
            if split:
                writer.writerow([clip, digit, split])
    return path


def train_and_test(manifest, run, multiplier, epochs):
    from video_understanding.config import get_config
    from video_understanding.evaluate import evaluate
    from video_understanding.train import train

    config = get_config(
        "demo",
        [
            "model.modalities=audio",
            "data.sample_rate=8000",
            "data.clip_seconds=2.5",
            "data.num_frames=2",
            "data.frame_size=32",
            f"training.epochs={epochs}",
            f"training.audio_learning_rate_multiplier={multiplier}",
            "training.precision=float32",
        ],
    )
    history = train(config, run, data_path=manifest, verbose=2)
    metrics = evaluate(run, split="test", verbose=False)
    return metrics["accuracy"], history["history"]["accuracy"][-1]


def main(argv=None):
    parser = bench_parser(__doc__, "spoken_digits")
    parser.add_argument("--recordings", required=True, help="FSDD recordings/")
    parser.add_argument("--work", help="folder for the clips and runs (kept)")
    args = parser.parse_args(argv)
    from video_understanding.config import get_config

    default = get_config("demo").training.audio_learning_rate_multiplier
    epochs = get_config("demo").training.epochs
    work = args.work or tempfile.mkdtemp(prefix="mmsuite-digits-")
    rows = write_clips(args.recordings, os.path.join(work, "clips"))
    splits = {
        "own_split": lambda speaker, take: "test" if take < 5 else "train",
        "cross_speaker": lambda speaker, take: (
            "train" if speaker == "jackson" else "test"
        ),
    }
    if args.quick:
        splits.pop("cross_speaker")
    results, details = [], {}
    for name, split_of in splits.items():
        manifest = write_manifest(os.path.join(work, f"{name}.csv"), rows, split_of)
        for multiplier in (default, 1.0):
            run = os.path.join(work, f"run-{name}-x{multiplier:g}")
            test, train_accuracy = train_and_test(manifest, run, multiplier, epochs)
            details[f"{name}_x{multiplier:g}"] = {
                "test_accuracy": test,
                "final_train_accuracy": train_accuracy,
            }
            target = 0.95 if (name == "own_split" and multiplier == default) else None
            results.append(
                result(
                    f"spoken digits {name}, audio lr x{multiplier:g}: test accuracy",
                    test,
                    "fraction",
                    target=target,
                    note=f"final training accuracy {train_accuracy:.3f}",
                )
            )
            print(
                f"{name} x{multiplier:g}: test {test:.3f}, train {train_accuracy:.3f}"
            )
    write_report(
        args.output,
        results,
        settings={"recordings": len(rows), "epochs": epochs},
        extra={"details": details},
    )


if __name__ == "__main__":
    main()
