"""The prepared-data format of `python -m retrieval prepare`, in one place.

A prepared folder holds `<split>-NNNNN-of-MMMMM.tfrecord` shards of
`tf.train.Example`s with three features:

- `image`: the image file's encoded bytes, unchanged;
- `captions`: the image's captions (UTF-8);
- `id`: the image path relative to the data's image folder.

`prepare.json` (`METADATA`) records `kind` (`KIND`), the settings, the image
folder and the shard names of each split; `<split>.jsonl` lists each split's
images in shard order with their captions. `encode_example` is the one writer
of a record and `parse_example` the one reader.
"""

import dataclasses
import json
import os

from common.data import prepared
from common.data.prepared import METADATA, is_prepared  # noqa: F401 (the format's API)

KIND = "retrieval"


@dataclasses.dataclass
class PreparedImages:
    """The images of one prepared split: its TFRecord shard files and the image
    ids (paths relative to the image folder) in the order the shards hold them.

    Pipelines take it wherever they take a list of image paths.
    """

    files: list
    ids: list

    def __len__(self):
        return len(self.ids)


def read_metadata(folder):
    """The `prepare.json` of a prepared folder (refused, by name, when the
    other application prepared it)."""
    return prepared.read_metadata(folder, KIND)


def read_split_index(folder, split):
    """`(ids, captions)` of a prepared split, in shard order."""
    ids, captions = [], []
    with open(os.path.join(folder, f"{split}.jsonl"), encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            ids.append(record["id"])
            captions.append(record["captions"])
    return ids, captions


def split_index_lines(items, root):
    """The lines of a `<split>.jsonl` for `[(image path, captions)]`."""
    return [
        json.dumps(
            {"id": os.path.relpath(path, root), "captions": captions},
            ensure_ascii=False,
        )
        + "\n"
        for path, captions in items
    ]


def shard_files(folder, splits, metadata=None):
    """The shard paths of `splits` of a prepared folder, in order."""
    metadata = metadata or read_metadata(folder)
    return [
        os.path.join(folder, name)
        for split in splits
        for name in metadata["shards"][split]
    ]


def encode_example(image_bytes, captions, image_id):
    """One serialized record (deterministic bytes)."""
    import tensorflow as tf

    def byte_strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image": byte_strings([image_bytes]),
                "captions": byte_strings([c.encode("utf-8") for c in captions]),
                "id": byte_strings([image_id.encode("utf-8")]),
            }
        )
    ).SerializeToString(deterministic=True)


def parse_example(record):
    """A serialized record (a scalar string tensor) -> `{"image": encoded
    bytes, "captions": string [n], "count": int32 n, "id": string}`."""
    import tensorflow as tf

    example = tf.io.parse_single_example(
        record,
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "captions": tf.io.VarLenFeature(tf.string),
            "id": tf.io.FixedLenFeature([], tf.string),
        },
    )
    texts = tf.sparse.to_dense(example["captions"])
    return {
        "image": example["image"],
        "captions": texts,
        "count": tf.shape(texts, out_type=tf.int32)[0],
        "id": example["id"],
    }
