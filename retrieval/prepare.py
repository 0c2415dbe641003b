"""Image-caption datasets written once as sharded TFRecords.

`prepare(data, output)` reads any layout `retrieval.data` knows (validating
every image and caption as training does), splits it, and writes the shards,
`prepare.json` and split indexes of the format `retrieval.records` defines
(images kept encoded, so any `data.image_size` works; the split indexes let
training adapt its vocabulary and evaluation match captions without reading
images). Shards are written as hidden temporary files renamed
when complete: a rerun keeps finished shards and writes the missing ones. A
prepared folder is a `--data` like any other: `retrieval train --data OUTPUT`
reads its shards, and under `--strategy multi_worker` each worker reads its
own shard files.
"""

import os
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from common.data.files import write_atomically, write_json_atomically
from common.data.limits import MAX_IMAGE_PIXELS
from common.data.shards import (
    check_same_preparation,
    plan_shards,
    split_settings,
    write_shard,
)
from common.data.splits import SPLITS
from retrieval.data import load_retrieval_data
from retrieval.records import KIND, METADATA, encode_example, split_index_lines


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write_shards(todo, output, image_root, workers, verbose):
    """Writes the `(split, name, items)` shards of `todo`, the images read by
    `workers` threads."""

    def records(shard_items, pool):
        paths = [path for path, _ in shard_items]
        for (path, captions), image in zip(
            shard_items, pool.map(_read, paths), strict=True
        ):
            yield encode_example(image, captions, os.path.relpath(path, image_root))

    with (
        ThreadPoolExecutor(max(1, workers)) as pool,
        tqdm(
            todo, desc="Writing shards", unit="shard", disable=None if verbose else True
        ) as shards,
    ):
        for _, name, shard_items in shards:
            write_shard(os.path.join(output, name), records(shard_items, pool))


def prepare(
    data_path,
    output,
    shard_size=256,
    seed=0,
    val_fraction=0.1,
    test_fraction=0.1,
    max_image_pixels=MAX_IMAGE_PIXELS,
    workers=8,
    verbose=True,
):
    """Writes the shards of `data_path` into `output`; returns the metadata."""
    if os.path.abspath(data_path) == os.path.abspath(output):
        raise ValueError("--output must be a folder other than --data.")
    data = load_retrieval_data(
        data_path,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_image_pixels=max_image_pixels,
        verbose=verbose,
    )
    settings = split_settings(shard_size, seed, val_fraction, test_fraction)
    settings["max_image_pixels"] = int(max_image_pixels)
    os.makedirs(output, exist_ok=True)
    metadata_path = os.path.join(output, METADATA)
    metadata = {
        "kind": KIND,
        "settings": settings,
        "data": os.path.abspath(data_path),
        "image_root": os.path.abspath(data.root),
    }
    check_same_preparation(metadata_path, metadata, "data or settings")
    items = {}
    for split in SPLITS:
        paths, captions = data.subset(split)
        items[split] = list(zip(paths, captions, strict=True))
    plan = plan_shards(items, shard_size)
    todo = [p for p in plan if not os.path.isfile(os.path.join(output, p[1]))]

    _write_shards(todo, output, data.root, workers, verbose)
    for split in SPLITS:
        lines = split_index_lines(items[split], data.root)
        write_atomically(os.path.join(output, f"{split}.jsonl"), "".join(lines))
    metadata["shards"] = {
        split: [name for s, name, _ in plan if s == split] for split in SPLITS
    }
    metadata["counts"] = {split: len(items[split]) for split in SPLITS}
    metadata["skipped"] = data.report.as_dict()
    write_json_atomically(metadata_path, metadata)
    if verbose:
        print(
            f"Prepared {len(plan)} shards in {output} ({len(plan) - len(todo)} kept "
            f"from before): "
            + ", ".join(f"{s} {metadata['counts'][s]} images" for s in SPLITS)
        )
    return metadata
