"""The prepared-data format of `python -m retrieval prepare`: where its
metadata and split indexes are and how they are read (the writer is
`retrieval.prepare`)."""

import json
import os

METADATA = "prepare.json"
KIND = "retrieval"


def is_prepared(path):
    """Whether `path` is a folder written by `prepare`."""
    metadata = os.path.join(path, METADATA)
    if not os.path.isfile(metadata):
        return False
    with open(metadata, encoding="utf-8") as f:
        return json.load(f).get("kind") == KIND


def read_metadata(folder):
    with open(os.path.join(folder, METADATA), encoding="utf-8") as f:
        return json.load(f)


def read_split_index(folder, split):
    """`(ids, captions)` of a prepared split, in shard order."""
    ids, captions = [], []
    with open(os.path.join(folder, f"{split}.jsonl"), encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            ids.append(record["id"])
            captions.append(record["captions"])
    return ids, captions
