"""TFRecord shards shared by the applications' `prepare` commands.

Shards are named `<split>-NNNNN-of-MMMMM.tfrecord` and each is written first as
a hidden temporary file renamed when complete, so an interrupted `prepare`
leaves only whole shards and a rerun writes only the missing ones.
"""

import os

from common.data.files import publish, write_failure


def plan_shards(items_by_split, shard_size):
    """`[(split, shard file name, items)]`: each split's items cut into shards
    of `shard_size` (the last one shorter), in order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1; received {shard_size}.")
    plan = []
    for split, items in items_by_split.items():
        count = -(-len(items) // shard_size)
        for shard in range(count):
            name = f"{split}-{shard:05d}-of-{count:05d}.tfrecord"
            plan.append(
                (split, name, items[shard * shard_size : (shard + 1) * shard_size])
            )
    return plan


def read_shards(files, shuffle_seed=None, cycle_length=8):
    """The records of shard `files`, `cycle_length` files read at a time,
    optionally in a file order shuffled each epoch (a file-level source, so
    `tf.distribute` can give each worker its own files)."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(list(files))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(
            len(files), seed=shuffle_seed, reshuffle_each_iteration=True
        )
    return dataset.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), cycle_length),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def write_shard(shard_path, serialized):
    """Writes the serialized `tf.train.Example`s `serialized` to `shard_path`:
    first a hidden temporary file, renamed when complete. A write that fails
    (a full disk) removes the temporary file and raises an `OSError` naming
    it."""
    import tensorflow as tf

    folder, name = os.path.split(shard_path)
    tmp = os.path.join(folder, "." + name)
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in serialized:
                writer.write(record)
        publish(tmp, shard_path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.remove(tmp)
        failure = write_failure(error, "the shard")
        if failure is not None:
            raise failure from error
        raise


def split_settings(shard_size, seed, val_fraction, test_fraction):
    """The settings every prepared folder records (both applications): how
    items were split and sharded, so that a rerun with others is refused."""
    return {
        "shard_size": int(shard_size),
        "seed": int(seed),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
    }


def check_same_preparation(metadata_path, metadata, what="settings"):
    """Refuses to add shards to a folder prepared differently: raises
    `ValueError` when `metadata_path` exists and differs from `metadata` in
    any key but `"data"` (the source path may move)."""
    import json

    if not os.path.isfile(metadata_path):
        return
    with open(metadata_path, encoding="utf-8") as f:
        previous = json.load(f)
    if any(previous.get(k) != v for k, v in metadata.items() if k != "data"):
        raise ValueError(
            f"{os.path.dirname(metadata_path)} holds shards prepared with other "
            f"{what} ({previous.get('settings')}); use a new --output folder."
        )
