"""tf.data pipelines over prepared clips (`video_understanding.records`):
training epochs, evaluation passes, and plain examples in shard order."""

import os

from common.data.epochs import epoch_seed, epoch_stream
from common.data.shards import read_shards
from video_understanding.records import (
    prepared_records,
    read_metadata,
    record_parser,
    split_size,
)


def _decoder(prepared, metadata, num_classes, multi_label):
    """`decode(record) -> (inputs, targets)` for a prepared folder: class ids,
    or multi-hot targets with `multi_label`."""
    import tensorflow as tf

    if not metadata["settings"].get("clip_seconds"):
        raise ValueError(
            f"{prepared} was prepared without a fixed clip window, so its clips' "
            "sound has different lengths and cannot batch: prepare it again "
            "(`prepare --clip-seconds`, 10 s by default)."
        )
    parse = record_parser(metadata["settings"])

    def decode(record):
        inputs, labels = parse(record)
        if multi_label:
            return inputs, tf.reduce_max(tf.one_hot(labels, num_classes), axis=0)
        return inputs, labels[0]

    return decode


def _worker_files(prepared, metadata, split, worker):
    """The shard files of `split` that `worker = (index, count)` reads."""
    worker_index, workers = worker
    files = [os.path.join(prepared, n) for n in metadata["shards"][split]]
    files = files[worker_index::workers]
    if not files:
        raise ValueError(
            f"Worker {worker_index} of {workers} has no {split!r} shard file to "
            f"read in {prepared}."
        )
    return files


def make_dataset(
    prepared,
    split,
    batch_size,
    num_classes,
    multi_label,
    shuffle,
    cache="none",
    seed=0,
    shuffle_buffer=256,
    first_epoch=0,
    epochs=1,
    worker=(0, 1),
):
    """Batches of `(inputs, targets)` from prepared shards.

    `cache` is `"memory"`, `"none"` or a disk-cache file prefix (see
    `common.data.cache.choose_cache`). Cached data is decoded once and
    shuffled all together; streamed data is shuffled before decoding (shard
    order each epoch, then a `shuffle_buffer` of encoded records), so memory
    does not grow with the dataset.

    With `shuffle` (training) the result is epochs `first_epoch .. epochs -
    1` of `ceil(clips / batch_size)` batches each, one after the other, in an order
    that depends only on `seed` and the epoch (`common.data.epochs`: a
    resumed run sees what an uninterrupted one would have); `worker=(index,
    count)` reads shard files `index, index + count, ...` (a cluster split
    by file), repeating them within an epoch until it is full. Without
    `shuffle`, one pass in shard order.
    """
    import tensorflow as tf

    metadata = read_metadata(prepared)
    decode = _decoder(prepared, metadata, num_classes, multi_label)
    cached = cache != "none"
    count = split_size(prepared, split, metadata)
    steps = -(-count // batch_size)

    def cache_of(dataset):
        dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.cache() if cache == "memory" else dataset.cache(cache)

    if not shuffle:
        records = prepared_records(prepared, split, None, metadata)
        if cached:
            dataset = cache_of(records)
        else:
            dataset = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
        return dataset.apply(tf.data.experimental.assert_cardinality(steps))

    files = _worker_files(prepared, metadata, split, worker)
    split_by_file = worker[1] > 1
    if cached:
        decoded = cache_of(tf.data.TFRecordDataset(files))

    def one_epoch(epoch):
        this_seed = epoch_seed(seed, epoch)
        if cached:
            dataset = decoded.shuffle(max(count, 1), seed=this_seed)
        else:
            records = read_shards(files, this_seed, cycle_length=4)
            records = records.shuffle(max(1, min(count, shuffle_buffer)), this_seed)
            dataset = records.map(
                decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
        if split_by_file:
            dataset = dataset.repeat()
        return dataset.batch(batch_size).take(steps)

    stream = epoch_stream(one_epoch, first_epoch, epochs)
    return stream.prefetch(tf.data.AUTOTUNE)


def prepared_dataset(output, split, batch_size=None):
    """`({"frames": uint8 [T, S, S, 3], "audio": float32 [N], "audio_present":
    bool}, labels int64 [k])` examples from the shards of `split`, in order."""
    import tensorflow as tf

    metadata = read_metadata(output)
    dataset = prepared_records(output, split, metadata=metadata).map(
        record_parser(metadata["settings"]), num_parallel_calls=tf.data.AUTOTUNE
    )
    if batch_size:
        dataset = dataset.padded_batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
