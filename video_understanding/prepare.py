"""Decode clips once into sharded TFRecords: frames as JPEG, audio as int16 PCM.

`prepare(data, output)` writes `output/<split>-NNNNN-of-MMMMM.tfrecord` shards:
clips are decoded in parallel worker processes (which do not import
TensorFlow) and each shard is written by the main process, first as a hidden
temporary file renamed when complete, so a rerun keeps the finished shards and
writes only the missing ones. `output/prepare.json` records the settings and class
names (a rerun with
other settings is refused); `output/skipped.json` lists clips that failed to
decode. `prepared_dataset(output, split)` reads them back with tf.data.
"""

import io
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from PIL import Image
from tqdm import tqdm

from common.data import SkipReport
from common.data.files import write_json_atomically
from common.data.shards import check_same_preparation, plan_shards, write_shard
from common.data.video import ClipDecodeError, decode_clip
from video_understanding.data import SPLITS, load_video_data

METADATA = "prepare.json"
SKIPPED = "skipped.json"


def _jpeg(frame):
    buffer = io.BytesIO()
    # 4:4:4 chroma: small frames keep sharp colour edges.
    Image.fromarray(frame).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def decode_for_shard(clips, settings):
    """Decodes `clips` (`[(path, [label index, ...])]`) for one shard.

    Runs in a worker process, which imports PyAV, NumPy and Pillow but not
    TensorFlow (a spawned worker would spend seconds importing it). Returns
    `(records, problems)`: a record is the clip's JPEG frames, int16 PCM audio
    and metadata; a problem is `(path, reason)`.
    """
    records, problems = [], []
    for path, targets in clips:
        try:
            clip = decode_clip(
                path,
                settings["num_frames"],
                settings["frame_size"],
                sample_rate=settings["sample_rate"],
                clip_seconds=settings["clip_seconds"],
                mode="center",
                max_duration=settings["max_duration"],
            )
        except (ClipDecodeError, OSError) as error:
            problems.append((path, str(error)))
            continue
        records.append(
            {
                "frames": [_jpeg(f) for f in clip.frames],
                "audio": np.round(clip.audio * 32767.0).astype("<i2").tobytes(),
                "labels": list(targets),
                "audio_present": int(clip.audio_present),
                "path": path,
                "duration": clip.duration,
            }
        )
    return records, problems


def _example(record):
    import tensorflow as tf

    def int64s(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    def byte_strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    features = {
        "frames": byte_strings(record["frames"]),
        "audio": byte_strings([record["audio"]]),
        "labels": int64s(record["labels"]),
        "audio_present": int64s([record["audio_present"]]),
        "path": byte_strings([record["path"].encode()]),
        "duration": tf.train.Feature(
            float_list=tf.train.FloatList(value=[record["duration"]])
        ),
    }
    return tf.train.Example(features=tf.train.Features(feature=features))


def plan_video_shards(data, shard_size):
    """`[(split, shard file name, [(path, label indices)])]` for every split."""
    index = {name: i for i, name in enumerate(data.class_names)}
    items = {}
    for split in SPLITS:
        paths, labels = data.subset(split)
        items[split] = [
            (p, [index[n] for n in ls]) for p, ls in zip(paths, labels, strict=True)
        ]
    return plan_shards(items, shard_size)


def prepare(
    data_path,
    output,
    num_frames=8,
    frame_size=112,
    sample_rate=16000,
    clip_seconds=None,
    shard_size=64,
    workers=None,
    max_duration=3600.0,
    seed=0,
    val_fraction=0.1,
    test_fraction=0.1,
    verbose=True,
):
    """Writes the shards (keeping complete ones); returns the metadata dict."""
    data = load_video_data(
        data_path,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        verbose=verbose,
    )
    settings = {
        "num_frames": int(num_frames),
        "frame_size": int(frame_size),
        "sample_rate": int(sample_rate),
        "clip_seconds": clip_seconds,
        "max_duration": max_duration,
        "shard_size": int(shard_size),
    }
    os.makedirs(output, exist_ok=True)
    metadata_path = os.path.join(output, METADATA)
    metadata = {
        "settings": settings,
        "class_names": data.class_names,
        "multi_label": data.multi_label,
        "data": os.path.abspath(data_path),
    }
    check_same_preparation(metadata_path, metadata, "settings or classes")
    plan = plan_video_shards(data, shard_size)
    todo = [
        (split, name, clips)
        for split, name, clips in plan
        if not os.path.isfile(os.path.join(output, name))
    ]
    report = SkipReport(data_path)
    skipped_path = os.path.join(output, SKIPPED)
    earlier = []
    if os.path.isfile(skipped_path):
        with open(skipped_path, encoding="utf-8") as f:
            earlier = json.load(f)
    problems = list(earlier)
    workers = workers or min(len(todo), os.cpu_count() or 1) or 1
    progress = tqdm(
        total=len(todo), desc="Preparing shards", unit="shard", disable=not verbose
    )
    if todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {
                pool.submit(decode_for_shard, clips, settings): name
                for _, name, clips in todo
            }
            for future in as_completed(futures):
                records, shard_problems = future.result()
                write_shard(
                    os.path.join(output, futures[future]),
                    (_example(record).SerializeToString() for record in records),
                )
                problems.extend(shard_problems)
                progress.update(1)
    progress.close()
    for path, reason in problems:
        report.skip(reason.split(": ", 1)[-1].split(" (")[0], path)
    write_json_atomically(skipped_path, problems)
    metadata["shards"] = {
        split: sorted(n for s, n, _ in plan if s == split) for split in SPLITS
    }
    metadata["skipped"] = len(problems)
    write_json_atomically(metadata_path, metadata)
    if verbose:
        print(
            f"Prepared {len(plan)} shards in {output} ({len(plan) - len(todo)} kept "
            f"from before); skipped clips: {len(problems)}"
        )
        if problems:
            print("Skipped: " + report.summary())
    return metadata


def prepared_dataset(output, split, batch_size=None):
    """`({"frames": uint8 [T, S, S, 3], "audio": float32 [N], "audio_present":
    bool}, labels int64 [k])` examples from the shards of `split`."""
    import tensorflow as tf

    with open(os.path.join(output, METADATA), encoding="utf-8") as f:
        metadata = json.load(f)
    settings = metadata["settings"]
    files = [os.path.join(output, n) for n in metadata["shards"][split]]
    if not files:
        raise ValueError(f"No {split!r} shards in {output}.")
    size, frames = settings["frame_size"], settings["num_frames"]
    spec = {
        "frames": tf.io.FixedLenFeature([frames], tf.string),
        "audio": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.int64),
        "audio_present": tf.io.FixedLenFeature([1], tf.int64),
    }

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        images = tf.map_fn(
            lambda jpeg: tf.io.decode_jpeg(jpeg, channels=3),
            example["frames"],
            fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8),
        )
        pcm = tf.io.decode_raw(example["audio"], tf.int16)
        audio = tf.cast(pcm, tf.float32) / 32767.0
        inputs = {
            "frames": images,
            "audio": audio,
            "audio_present": tf.cast(example["audio_present"][0], tf.bool),
        }
        return inputs, tf.sparse.to_dense(example["labels"])

    dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        dataset = dataset.padded_batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
