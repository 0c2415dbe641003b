"""The prepared-data format of `python -m video_understanding prepare`, in one
place.

A prepared folder holds `<split>-NNNNN-of-MMMMM.tfrecord` shards of
`tf.train.Example`s, one per clip: `frames` (JPEG bytes, `num_frames` of
them), `audio` (int16 PCM bytes of the clip window), `labels` (class
indices), `audio_present`, `audio_samples`, `frames_decoded`, `path` and
`duration`. `prepare.json` (`METADATA`) records `kind` (`KIND`), the
settings, the class names, the shards of each split and their clip counts;
`skipped.json` (`SKIPPED`) the clips left out. `encode_example` is the one
writer of a record and `record_parser` the one reader.
"""

import os

from common.data import prepared
from common.data.prepared import METADATA, is_prepared  # noqa: F401 (the format's API)
from common.data.shards import read_shards

SKIPPED = "skipped.json"
KIND = "video_understanding"


def encode_example(record):
    """One clip's record (a dict of decoded fields) -> serialized bytes."""
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
        "audio_samples": int64s([record["audio_samples"]]),
        "frames_decoded": int64s([record["frames_decoded"]]),
        "path": byte_strings([record["path"].encode()]),
        "duration": tf.train.Feature(
            float_list=tf.train.FloatList(value=[record["duration"]])
        ),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString(deterministic=True)


def read_metadata(folder):
    """The `prepare.json` of a prepared folder (refused, by name, when the
    other application prepared it)."""
    return prepared.read_metadata(folder, KIND)


def split_size(folder, split, metadata=None):
    """How many clips the prepared `split` holds."""
    metadata = metadata or read_metadata(folder)
    if "counts" in metadata:
        return metadata["counts"][split]
    import tensorflow as tf

    files = [os.path.join(folder, n) for n in metadata["shards"][split]]
    return sum(1 for _ in tf.data.TFRecordDataset(files)) if files else 0


def prepared_records(output, split, shuffle_seed=None, metadata=None):
    """The serialized records of `split`, in shard order; with `shuffle_seed`
    from shards in an order shuffled each epoch, read four at a time (a
    file-level source, so `tf.distribute` can give each worker its own
    files)."""
    import tensorflow as tf

    metadata = metadata or read_metadata(output)
    files = [os.path.join(output, n) for n in metadata["shards"][split]]
    if not files:
        raise ValueError(f"No {split!r} shards in {output}.")
    if shuffle_seed is None:
        return tf.data.TFRecordDataset(files)
    return read_shards(files, shuffle_seed, cycle_length=4)


def record_parser(settings):
    """A function: serialized record -> `({"frames": uint8 [T, S, S, 3],
    "audio": float32 [num_samples], "audio_present": bool}, labels int64 [k])`.

    The audio is cropped or padded with silence to the prepared window, so
    folders prepared without a fixed one still batch.
    """
    import tensorflow as tf

    size, frames = settings["frame_size"], settings["num_frames"]
    clip_seconds = settings.get("clip_seconds")
    num_samples = settings.get("num_samples") or (
        int(round(clip_seconds * settings["sample_rate"])) if clip_seconds else None
    )
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
        if num_samples is not None:
            audio = audio[:num_samples]
            audio = tf.pad(audio, [[0, num_samples - tf.shape(audio)[0]]])
            audio = tf.ensure_shape(audio, (num_samples,))
        inputs = {
            "frames": images,
            "audio": audio,
            "audio_present": tf.cast(example["audio_present"][0], tf.bool),
        }
        return inputs, tf.sparse.to_dense(example["labels"])

    return parse


def clip_bytes(settings):
    """Decoded size of one prepared clip: frames (uint8) and audio (float32)."""
    frames = settings["num_frames"] * settings["frame_size"] ** 2 * 3
    samples = settings.get("num_samples") or int(
        round((settings.get("clip_seconds") or 10.0) * settings["sample_rate"])
    )
    return frames + 4 * samples
