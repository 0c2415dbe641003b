"""Decode clips once into sharded TFRecords: frames as JPEG, audio as int16 PCM.

`prepare(data, output)` writes `output/<split>-NNNNN-of-MMMMM.tfrecord` shards:
clips are decoded in parallel worker processes (which do not import
TensorFlow) and each shard is written by the main process, first as a hidden
temporary file renamed when complete, so a rerun keeps the finished shards and
writes only the missing ones. Every clip is decoded to the same shapes: a
window of `clip_seconds` (a shorter clip's sound is padded with silence), so
clips of any length batch together. Each split's clips are shuffled (with the
split seed) before they are cut into shards, so a shard mixes classes.

`output/prepare.json` records the settings, class names, the clips of each
shard and how many have no sound (a rerun with other settings is refused);
`output/skipped.json` lists every clip left out, once, with its reason,
whether the loader refused it (missing, empty, not a video) or it failed to
decode. The format is `video_understanding.records`'; `video_understanding.pipeline`
reads it back with tf.data.
"""

import dataclasses
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
from common.data.shards import (
    check_same_preparation,
    plan_shards,
    split_settings,
    write_shard,
)
from common.data.video import ClipDecodeError, decode_with
from video_understanding.config import DataConfig, check_clip_seconds
from video_understanding.data import SPLITS, load_video_data
from video_understanding.records import (
    KIND,
    METADATA,
    SKIPPED,
    encode_example,
)


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
            clip = decode_with(path, settings)
        except (ClipDecodeError, OSError) as error:
            problems.append((path, str(error)))
            continue
        records.append(
            {
                "frames": [_jpeg(f) for f in clip.frames],
                "audio": np.round(clip.audio * 32767.0).astype("<i2").tobytes(),
                "labels": list(targets),
                "audio_present": int(clip.audio_present),
                "audio_samples": int(clip.audio_samples),
                "frames_decoded": int(clip.frames_decoded),
                "path": path,
                "duration": clip.duration,
            }
        )
    return records, problems


def plan_video_shards(data, shard_size, seed=0):
    """`[(split, shard file name, [(path, label indices)])]` for every split,
    each split's clips in an order shuffled with `seed`."""
    index = {name: i for i, name in enumerate(data.class_names)}
    items = {}
    for split in SPLITS:
        paths, labels = data.subset(split)
        order = np.random.default_rng(seed).permutation(len(paths))
        items[split] = [(paths[i], [index[n] for n in labels[i]]) for i in order]
    return plan_shards(items, shard_size)


def _shard_stats(path, records):
    """`{"clips": N, "without_audio": M}` of a shard, from its records or, for
    a shard kept from an interrupted run, by reading it."""
    if records is not None:
        return {
            "clips": len(records),
            "without_audio": sum(1 for r in records if not r["audio_present"]),
        }
    import tensorflow as tf

    clips = without = 0
    for raw in tf.data.TFRecordDataset(path):
        example = tf.train.Example.FromString(raw.numpy())
        clips += 1
        without += 1 - example.features.feature["audio_present"].int64_list.value[0]
    return {"clips": clips, "without_audio": without}


def _known_problems(output, plan, todo, loader_report):
    """`{clip path: reason}` known before decoding: the decoding problems of
    shards kept from an earlier run (from its list) and, anew each run, what
    the loader refused."""
    skipped_path = os.path.join(output, SKIPPED)
    earlier = {}
    if os.path.isfile(skipped_path):
        with open(skipped_path, encoding="utf-8") as f:
            earlier = {path: reason for path, reason in json.load(f)}
    written = {name for _, name, _ in todo}
    kept = {path for _, name, clips in plan if name not in written for path, _ in clips}
    problems = {p: r for p, r in earlier.items() if p in kept}
    for path, reason in loader_report.entries:
        problems[path] = reason
    return problems


def _decode_and_write(todo, settings, output, workers, problems, verbose):
    """Decodes the shards of `todo` in worker processes and writes each as it
    comes; adds the clips that failed to `problems`; returns the written
    shards' stats by name."""
    stats = {}
    workers = workers or min(len(todo), os.cpu_count() or 1) or 1
    with tqdm(
        total=len(todo),
        desc="Preparing shards",
        unit="shard",
        disable=None if verbose else True,
    ) as progress:
        if not todo:
            return stats
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {
                pool.submit(decode_for_shard, clips, settings): name
                for _, name, clips in todo
            }
            try:
                for future in as_completed(futures):
                    records, shard_problems = future.result()
                    write_shard(
                        os.path.join(output, futures[future]),
                        (encode_example(record) for record in records),
                    )
                    stats[futures[future]] = _shard_stats(None, records)
                    problems.update(dict(shard_problems))
                    progress.update(1)
            except BaseException:
                # A failed write (a full disk) stops here: the shards not
                # decoded yet are not waited for.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return stats


def _add_shard_listing(metadata, plan, stats, skipped):
    """The shards of each split, their stats and the clip counts."""
    metadata["shards"] = {
        split: sorted(n for s, n, _ in plan if s == split) for split in SPLITS
    }
    metadata["records"] = {name: stats[name] for _, name, _ in plan}
    metadata["counts"] = {
        split: sum(stats[n]["clips"] for n in metadata["shards"][split])
        for split in SPLITS
    }
    metadata["without_audio"] = sum(s["without_audio"] for s in stats.values())
    metadata["skipped"] = skipped


def _add_kept_shard_stats(stats, plan, output, metadata_path):
    """Adds to `stats` those of the shards kept from an earlier run: from its
    `prepare.json`, or read from the shard file."""
    previous = {}
    if os.path.isfile(metadata_path):
        with open(metadata_path, encoding="utf-8") as f:
            previous = json.load(f).get("records", {})
    for _, name, _ in plan:
        if name not in stats:
            stats[name] = previous.get(name) or _shard_stats(
                os.path.join(output, name), None
            )


def _summary(metadata, output, shards, kept):
    """One line: the shards written, the clips of each split, the skips."""
    counts = metadata["counts"]
    return (
        f"Prepared {shards} shards in {output} ({kept} kept from before): train "
        f"{counts['train']}, val {counts['val']}, test {counts['test']} clips "
        f"({metadata['without_audio']} without sound, given silence); skipped "
        f"clips: {metadata['skipped']}"
    )


def prepare(
    data_path,
    output,
    settings=None,
    workers=None,
    max_duration=3600.0,
    verbose=True,
    **overrides,
):
    """Writes the shards (keeping complete ones); returns the metadata dict.

    `settings` is a `video_understanding.config.DataConfig`: its decoding
    (`num_frames`, `frame_size`, `sample_rate`, `clip_seconds`) and split
    (`shard_size`, `seed`, `val_fraction`, `test_fraction`) settings are
    used, with keyword `overrides` of its fields (`prepare(data, output,
    num_frames=4)`). `workers` decoding processes (default: the CPUs) skip
    clips whose header declares more than `max_duration` seconds.
    """
    d = dataclasses.replace(settings or DataConfig(), **overrides)
    check_clip_seconds(d.clip_seconds)
    data = load_video_data(
        data_path,
        seed=d.seed,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
        verbose=verbose,
    )
    settings = {
        "num_frames": int(d.num_frames),
        "frame_size": int(d.frame_size),
        "sample_rate": int(d.sample_rate),
        "clip_seconds": float(d.clip_seconds),
        "num_samples": int(round(d.clip_seconds * d.sample_rate)),
        "max_duration": max_duration,
        **split_settings(d.shard_size, d.seed, d.val_fraction, d.test_fraction),
    }
    os.makedirs(output, exist_ok=True)
    metadata_path = os.path.join(output, METADATA)
    metadata = {
        "kind": KIND,
        "settings": settings,
        "class_names": data.class_names,
        "multi_label": data.multi_label,
        "data": os.path.abspath(data_path),
    }
    check_same_preparation(metadata_path, metadata, "settings or classes")
    plan = plan_video_shards(data, d.shard_size, d.seed)
    todo = [
        (split, name, clips)
        for split, name, clips in plan
        if not os.path.isfile(os.path.join(output, name))
    ]
    problems = _known_problems(output, plan, todo, data.report)
    stats = _decode_and_write(todo, settings, output, workers, problems, verbose)
    _add_kept_shard_stats(stats, plan, output, metadata_path)
    report = SkipReport(data_path)
    for path, reason in problems.items():
        report.skip(reason.split(": ", 1)[-1].split(" (")[0], path)
    write_json_atomically(os.path.join(output, SKIPPED), sorted(problems.items()))
    _add_shard_listing(metadata, plan, stats, len(problems))
    report.kept = sum(metadata["counts"].values())
    write_json_atomically(metadata_path, metadata)
    if verbose:
        print(_summary(metadata, output, len(plan), len(plan) - len(todo)))
        if problems:
            print("Skipped: " + report.summary())
    return metadata
