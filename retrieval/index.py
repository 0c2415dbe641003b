"""Building search SavedModels: a gallery embedded, exported as versions (and
shards), merged; `retrieval.search_index.SearchIndex` is the module they hold."""

import gc
import os
import re

import numpy as np
import tensorflow as tf

from common.data import SkipReport
from common.export import export_versioned, resolve_version_dir
from common.export.versioned import list_versions, next_version
from common.serving.warmup import sample_jpeg, write_warmup_requests
from retrieval.gallery import (
    REGION_DTYPE,
    EmbeddingSpool,
    embed_gallery,
    gallery_source,
)
from retrieval.search_index import SearchIndex

SHARD_FOLDER = re.compile(r"^shard-(\d{5})-of-(\d{5})$")


def shard_folder(index, count):
    return f"shard-{index:05d}-of-{count:05d}"


def index_versions(path):
    """The SavedModel folders of the index at `path`: `[path's newest version]`
    for one index, or, for a sharded one (`shard-NNNNN-of-MMMMM/` model
    folders), each shard's folder of the newest version all shards have."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")) or not os.path.isdir(path):
        return [resolve_version_dir(path)]
    groups = {}
    for name in os.listdir(path):
        match = SHARD_FOLDER.match(name)
        if match:
            groups.setdefault(int(match.group(2)), {})[int(match.group(1))] = name
    if not groups:
        return [resolve_version_dir(path)]
    best = None
    for count, names in groups.items():
        if len(names) != count:
            continue
        common = set.intersection(
            *(set(list_versions(os.path.join(path, n))) for n in names.values())
        )
        if common and (best is None or max(common) > best[0]):
            best = (max(common), [names[i] for i in range(count)])
    if best is None:
        raise FileNotFoundError(
            f"The sharded index {path!r} has no version that every shard holds."
        )
    version, names = best
    return [os.path.join(path, name, str(version)) for name in names]


def parse_shard(value):
    """`"i/N"` -> `(i, N)`, 0 <= i < N."""
    try:
        index, count = (int(part) for part in str(value).split("/"))
    except ValueError:
        raise ValueError(
            f"--shard must look like i/N (e.g. 0/4); got {value!r}."
        ) from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {value!r}: need 0 <= i < N.")
    return index, count


def export_index(
    encoder,
    embeddings,
    ids,
    root,
    output,
    version=None,
    keep=None,
    regions=None,
    rerank_weight=1.0,
    rerank_depth=0,
):
    """Writes a `SearchIndex` over `embeddings` / `ids` (and `regions`, to
    re-rank) as the next version of `output` (atomically, with warmup
    requests); returns its folder."""
    index = SearchIndex(
        encoder, embeddings, ids, root, regions, rerank_weight, rerank_depth
    )
    signatures = index.signature_map()
    jpeg = sample_jpeg()
    k = min(10, len(ids))
    depth = min(int(rerank_depth), len(ids))
    warmup = {
        "search_by_text": lambda b: {"text": ["a photo"] * b, "k": [k] * b},
        "search_by_image": lambda b: {"image_bytes": [jpeg] * b, "k": [k] * b},
        "serving_default": lambda b: {"text": ["a photo"] * b, "k": [k] * b},
        "search_by_text_reranked": lambda b: {
            "text": ["a photo"] * b,
            "k": [k] * b,
            "rerank_depth": [depth] * b,
        },
    }
    warmup = {name: warmup[name] for name in signatures}

    def write(tmp):
        tf.saved_model.save(index, tmp, signatures=signatures)
        write_warmup_requests(tmp, "retrieval_index", warmup)

    return export_versioned(write, output, version=version, keep=keep)


def _rerank_settings(encoder, model_dir, rerank_depth):
    """`{"rerank_weight", "rerank_depth"}` of an index over `encoder`: the
    depth asked for, or the run's when the model can re-rank."""
    from retrieval.export import rerank_defaults

    weight, default_depth = rerank_defaults(encoder)
    can_rerank = {"image_regions", "match_regions", "text_tokens"} <= set(
        encoder.signatures
    )
    if rerank_depth is None:
        rerank_depth = default_depth if can_rerank else 0
    if rerank_depth < 0:
        raise ValueError(f"--rerank-depth must be 0 or more; received {rerank_depth}.")
    if rerank_depth and not can_rerank:
        raise ValueError(
            f"{model_dir} has no matching-head signatures (image_regions, "
            "text_tokens, match_regions): export the run again to re-rank, or "
            "index with --rerank-depth 0."
        )
    return {"rerank_weight": weight, "rerank_depth": rerank_depth}


def _export_slices(encoder, spool, size, root, output, version, keep, rerank):
    """One search SavedModel per `size` spooled images: `[version folder]`,
    or one per shard folder `output/shard-NNNNN-of-MMMMM` (same version)."""
    slices = spool.slices(size)  # streamed: one slice in memory at a time
    count = -(-spool.count // size)
    if count == 1:
        ((embeddings, ids, regions),) = slices
        return [
            export_index(
                encoder, embeddings, ids, root, output, version, keep, regions, **rerank
            )
        ]
    folders = [os.path.join(output, shard_folder(i, count)) for i in range(count)]
    if version is None:
        version = max(next_version(f) for f in folders)
    paths = []
    for folder, (embeddings, ids, regions) in zip(folders, slices, strict=True):
        paths.append(
            export_index(
                encoder, embeddings, ids, root, folder, version, keep, regions, **rerank
            )
        )
        # a SearchIndex and its traced functions form reference cycles:
        # collect each shard's before the next one is built
        del embeddings, ids, regions
        gc.collect()
    return paths


def _summary(kept, images, shard, model_dir, paths, output):
    """What `build_index` indexed, from where, into which folders."""
    part = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    where = paths[0]
    if len(paths) > 1:
        version = os.path.basename(paths[0])
        where = f"{len(paths)} index shards {output}/shard-*/{version}"
    return f"Indexed {kept} images{part} from {images} with {model_dir} into {where}"


def _rerank_summary(rerank, region_shape):
    """How text searches re-rank, and the bytes of region features per image."""
    per_image = int(np.prod(region_shape)) * np.dtype(REGION_DTYPE).itemsize
    return (
        f"Text searches re-rank their top {rerank['rerank_depth']} with the "
        f"matching head (weight {rerank['rerank_weight']:g}); region "
        f"features {per_image:,} bytes per image (--rerank-depth 0 leaves "
        "them out)."
    )


def build_index(
    model,
    images,
    output="saved_models/retrieval_index",
    batch_size=32,
    version=None,
    keep=None,
    pattern="*",
    shard=None,
    max_shard_images=None,
    rerank_depth=None,
    verbose=True,
):
    """Embeds every image under `images` (whose name matches the glob
    `pattern`) and exports a search SavedModel.

    `rerank_depth` (default: the run's `training.rerank_top_k`, saved in the
    retrieval SavedModel) is how many of a text query's top candidates
    `search_by_text` re-ranks with the matching head; the index then stores
    each image's region features (float16, `gallery_info()` gives the bytes
    per image). 0 stores embeddings only and ranks by cosine.

    `images` is a folder of image files or a folder written by
    `retrieval prepare` (all its splits). Embeddings are streamed to a
    temporary file in batches, so memory is one batch plus one index's
    embeddings. With `max_shard_images`, a gallery larger than that is written
    as a sharded index: one search SavedModel per `max_shard_images` images,
    `output/shard-NNNNN-of-MMMMM/<version>/` (one TF Serving model each, all
    with the same version); `retrieval.search.search(output)` and
    `python -m common.serving search --model A --model B ...` merge their
    top-k.

    With `shard=(i, N)` only every N-th image from the i-th on (in sorted
    order) is indexed, so N processes can index one gallery in parallel;
    search the shards together (`retrieval.search.search` takes several
    indexes) or merge them into one (`merge_indexes`). Returns the list of
    new version folders (one, or one per shard of a sharded index). Ids are
    the image paths relative to the image folder.
    """
    if max_shard_images is not None and max_shard_images < 1:
        raise ValueError(
            f"--max-shard-images must be at least 1; received {max_shard_images}."
        )
    model_dir = resolve_version_dir(model)
    encoder = tf.saved_model.load(model_dir)
    rerank = _rerank_settings(encoder, model_dir, rerank_depth)
    report = SkipReport(images)
    root, total, batches = gallery_source(images, pattern, shard, batch_size, report)
    spool = EmbeddingSpool(output)  # a hidden folder TF Serving ignores
    try:
        report.kept = embed_gallery(
            encoder,
            batches,
            spool,
            verbose,
            total,
            with_regions=rerank["rerank_depth"] > 0,
        )
        if not report.kept:
            raise ValueError(f"No usable image in {images!r}: {report.summary()}")
        if report.skipped and verbose:
            print("Skipped: " + report.summary())
        size = max_shard_images or report.kept
        paths = _export_slices(
            encoder, spool, size, root, output, version, keep, rerank
        )
    finally:
        spool.close()
    if verbose:
        print(_summary(report.kept, images, shard, model_dir, paths, output))
        if rerank["rerank_depth"]:
            print(_rerank_summary(rerank, spool.region_shape))
    return paths


def merge_indexes(model, inputs, output, version=None, keep=None, verbose=True):
    """One search SavedModel from several (e.g. the shards of `--shard i/N`)
    made with the same retrieval model and gallery folder."""
    if not inputs:
        raise ValueError("Give the indexes to merge.")
    embeddings, ids, roots, regions, settings = [], [], set(), [], set()
    for path in [v for i in inputs for v in index_versions(i)]:
        loaded = tf.saved_model.load(path)
        embeddings.append(loaded.embeddings.numpy())
        ids.append(loaded.ids.numpy())
        roots.add(loaded.gallery_root.numpy().decode("utf-8"))
        info = loaded.gallery_info()
        depth = int(info.get("rerank_depth", 0))
        regions.append(loaded.regions.numpy() if depth else None)
        settings.add((depth, float(info.get("rerank_weight", 1.0))))
    if len(roots) != 1:
        raise ValueError(
            f"The indexes cover different gallery folders: {sorted(roots)}"
        )
    ids = np.concatenate(ids)
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("The indexes share images: were they made with --shard i/N?")
    if len(settings) != 1:
        raise ValueError(
            "The indexes re-rank differently (depth, weight): "
            f"{sorted(settings)}; build them with the same --rerank-depth."
        )
    depth, weight = settings.pop()
    encoder = tf.saved_model.load(resolve_version_dir(model))
    path = export_index(
        encoder,
        np.concatenate(embeddings),
        ids,
        roots.pop(),
        output,
        version,
        keep,
        np.concatenate(regions) if depth else None,
        rerank_weight=weight,
        rerank_depth=depth,
    )
    if verbose:
        print(f"Merged {len(inputs)} indexes ({len(ids)} images) into {path}")
    return path
