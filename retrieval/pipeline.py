"""tf.data pipelines of image-caption data: training batches with one caption
per image per epoch, and images in order for embedding a gallery. Both read
image files or prepared shards (`retrieval.records`)."""

import numpy as np
import tensorflow as tf

from common.data import decode_and_resize
from common.data.epochs import epoch_seed, epoch_stream, stateless_seeds
from common.data.shards import read_shards
from retrieval.records import PreparedImages, parse_example


def _load_image(path, image_size):
    return decode_and_resize(tf.io.read_file(path), image_size)


def _caption_table(captions):
    """Captions as a padded string matrix `[N, max]` and counts `[N]`."""
    longest = max(len(c) for c in captions)
    table = np.array([c + [""] * (longest - len(c)) for c in captions], dtype=object)
    counts = np.array([len(c) for c in captions], dtype=np.int32)
    return table.astype(str), counts


def _augment(image, image_size, seed):
    # A mild random crop; no flips or colour changes, which would contradict
    # captions that name sides and colours. `seed`: int64 [2], stateless.
    scale = tf.random.stateless_uniform((), seed, 0.85, 1.0)
    size = tf.cast(tf.round(scale * image_size), tf.int32)
    image = tf.image.stateless_random_crop(image, (size, size, 3), seed + [0, 1])
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _image_and_captions(record):
    example = parse_example(record)
    return example["image"], example["captions"], example["count"]


def _element_source(image_paths, captions, image_size, shuffle_buffer, cached, worker):
    """`(source, load, buffer)` of `training_dataset`: `source(order_seed)`
    gives `(image, captions, count)` elements (`order_seed` None: the stored
    order), `load` decodes their image, `buffer` is the shuffle buffer."""
    if isinstance(image_paths, PreparedImages):
        worker_index, workers = worker
        files = list(image_paths.files)[worker_index::workers]
        if not files:
            raise ValueError(
                f"Worker {worker_index} of {workers} has no shard file to read: "
                f"{len(image_paths.files)} shards."
            )
        size = max(1, len(image_paths) * len(files) // len(image_paths.files))
        buffer = size if cached else min(size, shuffle_buffer)

        def source(order_seed):  # None: shard order, else shuffled by it
            records = read_shards(files, order_seed)
            return records.map(_image_and_captions, num_parallel_calls=tf.data.AUTOTUNE)

        def load(image, texts, count):
            return decode_and_resize(image, image_size), texts, count
    else:
        table, counts = _caption_table(captions)
        rows = tf.data.Dataset.from_tensor_slices((list(image_paths), table, counts))
        buffer = len(image_paths)

        def source(order_seed):
            return rows

        def load(path, texts, count):
            return _load_image(path, image_size), texts, count

    return source, load, buffer


def training_dataset(
    image_paths,
    captions,
    image_size,
    batch_size,
    augment=False,
    cache="none",
    seed=0,
    drop_remainder=True,
    shuffle_buffer=2048,
    first_epoch=0,
    epochs=1,
    steps_per_epoch=None,
    worker=(0, 1),
):
    """`(images uint8 [B, S, S, 3], text string [B])` batches of epochs
    `first_epoch .. epochs - 1` one after the other, with one random caption
    per image per epoch (so a batch holds no two copies of an image).

    Each epoch is one pass over the images in an order, a choice of captions
    and crops that depend only on `seed` and the epoch's number
    (`common.data.epochs`), so a run resumed at epoch `e` sees what an
    uninterrupted one would have.

    Args:
        image_paths: image file paths, or a `PreparedImages` (shards).
        cache: `"memory"`, `"none"`, or a file path prefix for a disk cache of
            the decoded, resized images. Cached images are shuffled all
            together; uncached ones are shuffled before decoding (paths all
            together, prepared records in a file order shuffled each epoch
            and a `shuffle_buffer` of encoded images), so memory does not grow
            with the dataset.
        first_epoch: the epoch the stream starts with.
        epochs: the epoch it ends before.
        steps_per_epoch: batches per epoch (default: one pass); prepared
            shards repeat within an epoch until it is full (the shards of
            one worker may hold fewer images than the others').
        worker: `(index, count)`: with prepared shards, this worker reads
            shard files `index`, `index + count`, ... (a cluster split by
            file).
    """
    cached = bool(cache) and cache != "none"
    prepared = isinstance(image_paths, PreparedImages)
    source, load, buffer = _element_source(
        image_paths, captions, image_size, shuffle_buffer, cached, worker
    )

    if cached:
        decoded = source(None).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        decoded = decoded.cache() if cache == "memory" else decoded.cache(cache)

    def pick(element, element_seed):
        image, texts, count = element
        index = tf.random.stateless_uniform((), element_seed, 0, count, dtype=tf.int32)
        if augment:
            image = _augment(image, image_size, element_seed + [0, 2])
        return image, texts[index]

    def one_epoch(epoch):
        this_seed = epoch_seed(seed, epoch)
        if cached:
            dataset = decoded.shuffle(buffer, seed=this_seed)
        else:
            dataset = source(this_seed).shuffle(buffer, seed=this_seed)
            dataset = dataset.map(
                load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
        if prepared and steps_per_epoch:
            dataset = dataset.repeat()
        dataset = stateless_seeds(dataset, this_seed).map(
            pick, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.take(steps_per_epoch) if steps_per_epoch else dataset

    stream = epoch_stream(one_epoch, first_epoch, epochs)
    return stream.prefetch(tf.data.AUTOTUNE)


def image_dataset(image_paths, image_size, batch_size):
    """Batches of uint8 images in order (for embedding a gallery); takes image
    paths or a `PreparedImages`."""
    if isinstance(image_paths, PreparedImages):
        dataset = tf.data.TFRecordDataset(list(image_paths.files)).map(
            lambda record: decode_and_resize(
                parse_example(record)["image"], image_size
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        dataset = tf.data.Dataset.from_tensor_slices(list(image_paths)).map(
            lambda path: _load_image(path, image_size),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def flatten_captions(captions):
    """`(texts, text_to_image)` with every caption once, in image order."""
    texts, text_to_image = [], []
    for index, image_captions in enumerate(captions):
        texts.extend(image_captions)
        text_to_image.extend([index] * len(image_captions))
    return texts, np.asarray(text_to_image, dtype=np.int64)
