"""Updating a search index in place of rebuilding it: the next version is
written from the previous version's stored vectors (or codes) and ids plus
only the new images' embeddings; removed ids are dropped."""

import os

import numpy as np
import tensorflow as tf

from common.data import SkipReport
from common.export import resolve_version_dir
from common.export.versioned import next_version
from retrieval.ann import EXACT_BELOW, IndexSettings, update_layout
from retrieval.gallery import EmbeddingSpool, embed_gallery, gallery_source
from retrieval.index import export_index, index_versions, search_module
from retrieval.stored_index import check_model, read_index


def read_ids(path):
    """Ids listed in the text file `path`, one a line (blank lines skipped)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _gallery_ids(ids, added_root, index_root):
    """The added images' ids as the index names its images: paths relative to
    the index's gallery folder when the images are under it, else absolute."""
    out = []
    for image_id in ids:
        path = os.path.realpath(os.path.join(added_root, image_id))
        root = os.path.realpath(index_root)
        inside = os.path.commonpath([path, root]) == root
        out.append(os.path.relpath(path, root) if inside else path)
    return out


def _embed_added(encoder, images, pattern, batch_size, with_regions, folder, verbose):
    """`(embeddings, ids, regions or None, report)` of the images to add."""
    report = SkipReport(images)
    root, total, batches = gallery_source(images, pattern, None, batch_size, report)
    spool = EmbeddingSpool(folder)
    try:
        report.kept = embed_gallery(
            encoder, batches, spool, verbose, total, with_regions=with_regions
        )
        if not report.kept:
            raise ValueError(f"No usable image in {images!r}: {report.summary()}")
        ((embeddings, ids, regions),) = spool.slices(spool.count)
        embeddings = embeddings.copy()
        regions = None if regions is None else regions.copy()
    finally:
        spool.close()
    return embeddings, np.array(ids, dtype=object), regions, root, report


def updated_gallery(stored, vectors, ids, regions, remove, retrain):
    """`(vectors, ids, regions, layout or None, retrained)` of `stored` with
    `remove` dropped and `vectors` / `ids` added (replacing equal ids); an
    IVF index gives its `layout` (and None for `vectors`)."""
    if stored.layout is not None:
        layout, retrained = update_layout(
            stored.layout, vectors, ids, regions, remove, retrain
        )
        return None, layout.ids, layout.regions, layout, retrained
    dropped = set(remove) | set(ids.tolist())
    keep = np.array([i not in dropped for i in stored.ids.tolist()], dtype=bool)
    out_regions = None
    if stored.regions is not None:
        out_regions = np.concatenate([stored.regions[keep], regions])
    return (
        np.concatenate([stored.vectors[keep], vectors]),
        np.concatenate([stored.ids[keep], ids]),
        out_regions,
        None,
        False,
    )


def _share(count, sizes):
    """Which of the shards (current `sizes`) each of `count` new images goes
    to: always the one holding the fewest."""
    sizes = list(sizes)
    out = []
    for _ in range(count):
        target = int(np.argmin(sizes))
        out.append(target)
        sizes[target] += 1
    return np.array(out, dtype=np.int64)


def update_index(
    model,
    index,
    add=None,
    remove=None,
    retrain=None,
    keep=None,
    pattern="*",
    batch_size=32,
    verbose=True,
):
    """Writes the next version of the search index `index` (one folder, or a
    sharded one, updated shard by shard with one new version each) with the
    images under `add` embedded by `model` and added, and the ids listed in
    the file `remove` dropped. Nothing already indexed is embedded again.

    `model` must be the retrieval SavedModel the index was built with. An IVF
    index keeps its centroids (new images join their nearest cluster) unless
    `retrain`, or until the gallery has grown past `RETRAIN_GROWTH` x the
    size the centroids were trained on. Returns the new version folders."""
    if add is None and remove is None:
        raise ValueError("Give --add (images) or --remove (an id file), or both.")
    model_dir = resolve_version_dir(model)
    versions = index_versions(index)
    stored = [read_index(path) for path in versions]
    for path, s in zip(versions, stored, strict=True):
        check_model(s, model_dir, path)
    removed = set(read_ids(remove)) if remove else set()
    encoder = tf.saved_model.load(model_dir)
    dim = stored[0].dim
    vectors, ids, regions = np.zeros((0, dim), np.float32), np.array([], object), None
    with_regions = stored[0].rerank_depth > 0
    if add is not None:
        vectors, ids, regions, root, report = _embed_added(
            encoder, add, pattern, batch_size, with_regions, index, verbose
        )
        ids = np.array(_gallery_ids(ids, root, stored[0].root), dtype=object)
        if report.skipped and verbose:
            print("Skipped: " + report.summary())
    elif with_regions:
        regions = np.zeros((0,) + stored[0].regions.shape[1:], stored[0].regions.dtype)
    present = {i for s in stored for i in s.ids.tolist()}
    missing = removed - present
    sizes = [len(s.ids) for s in stored]
    target = _share(len(ids), sizes)
    all_exact = all(s.layout is None for s in stored)
    version = max(next_version(os.path.dirname(p)) for p in versions)
    paths, messages = [], []
    for shard, path in enumerate(versions):
        mine = target == shard
        s = stored[shard]
        out_vectors, out_ids, out_regions, layout, retrained = updated_gallery(
            s,
            vectors[mine],
            ids[mine],
            None if regions is None else regions[mine],
            removed,
            retrain,
        )
        if not len(out_ids):
            raise ValueError(f"The update would leave {path} without any image.")
        if layout is None:
            settings = IndexSettings(method="exact")
        else:  # the default nprobe chosen at build is kept
            settings = IndexSettings(method="ivf", nprobe=s.nprobe)
        root, rerank = s.root, (s.rerank_weight, s.rerank_depth)
        stored[shard] = s = None  # the previous version's arrays can go now
        module = search_module(
            encoder, out_vectors, out_ids.astype(str), root, out_regions,
            *rerank, settings, model_dir, layout,
        )  # fmt: skip
        del layout, out_vectors, out_regions
        paths.append(export_index(module, os.path.dirname(path), version, keep))
        del module
        if retrained:
            messages.append(f"{path}: centroids trained again")
    if verbose:
        print(
            f"Updated {index}: {len(ids)} images added, "
            f"{len(removed) - len(missing)} removed, into {', '.join(paths)}"
        )
        for line in messages:
            print(line)
        if missing:
            print(f"{len(missing)} ids to remove were not in the index.")
        if all_exact and sum(sizes) >= EXACT_BELOW:
            print("The exact index is large: an IVF one (--method ivf) is faster.")
    return paths
