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
from retrieval.ann import IndexSettings, build_layout
from retrieval.gallery import (
    REGION_DTYPE,
    EmbeddingSpool,
    embed_gallery,
    gallery_source,
)
from retrieval.ivf_index import IvfSearchIndex
from retrieval.search_index import SearchIndex
from retrieval.stored_index import check_model, read_index

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


def search_module(
    encoder,
    embeddings,
    ids,
    root,
    regions=None,
    rerank_weight=1.0,
    rerank_depth=0,
    settings=None,
    model_dir="",
    layout=None,
):
    """The search module over a gallery: a `SearchIndex` (exact), or an
    `IvfSearchIndex` when `settings` (`IndexSettings`) choose IVF for its
    size; `layout` (an `IvfLayout`) gives the IVF gallery already built."""
    settings = settings or IndexSettings()
    rerank = {"rerank_weight": rerank_weight, "rerank_depth": rerank_depth}
    if layout is None and settings.method_for(len(ids)) == "exact":
        return SearchIndex(
            encoder, embeddings, ids, root, regions, model_dir=model_dir, **rerank
        )
    if layout is None:
        layout = build_layout(
            embeddings,
            ids,
            settings.nlist,
            settings.codes,
            regions,
            settings.seed,
            rescore=settings.rescore,
        )
    nprobe = settings.nprobe
    if nprobe is not None:
        nprobe = min(nprobe, layout.nlist)
    return IvfSearchIndex(
        encoder, layout, root, nprobe=nprobe, model_dir=model_dir, **rerank
    )


def _warmup_requests(index, size):
    """Warmup request makers (batch size -> inputs) for each signature."""
    jpeg = sample_jpeg()
    k = min(10, size)
    text = lambda b: {"text": ["a photo"] * b, "k": [k] * b}  # noqa: E731
    image = lambda b: {"image_bytes": [jpeg] * b, "k": [k] * b}  # noqa: E731
    depth = min(int(index.rerank_depth.numpy()), size)
    nprobe = (
        int(index.default_nprobe.numpy()) if hasattr(index, "default_nprobe") else 0
    )
    warmup = {
        "search_by_text": text,
        "search_by_image": image,
        "serving_default": text,
        "search_by_text_reranked": lambda b: text(b) | {"rerank_depth": [depth] * b},
        "search_by_text_nprobe": lambda b: text(b) | {"nprobe": [nprobe] * b},
        "search_by_image_nprobe": lambda b: image(b) | {"nprobe": [nprobe] * b},
    }
    return {name: warmup[name] for name in index.signature_map()}


def export_index(index, output, version=None, keep=None):
    """Writes the search module `index` (`search_module`) as the next version
    of `output` (atomically, with warmup requests); returns its folder."""
    signatures = index.signature_map()
    warmup = _warmup_requests(index, int(index.ids.shape[0]))

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


def _export_slices(spool, size, output, version, keep, module):
    """One search SavedModel per `size` spooled images: `[version folder]`,
    or one per shard folder `output/shard-NNNNN-of-MMMMM` (same version).
    `module(embeddings, ids, regions)` makes each one's search module."""
    slices = spool.slices(size)  # streamed: one slice in memory at a time
    count = -(-spool.count // size)
    if count == 1:
        ((embeddings, ids, regions),) = slices
        return [export_index(module(embeddings, ids, regions), output, version, keep)]
    folders = [os.path.join(output, shard_folder(i, count)) for i in range(count)]
    if version is None:
        version = max(next_version(f) for f in folders)
    paths = []
    for folder, (embeddings, ids, regions) in zip(folders, slices, strict=True):
        index = module(embeddings, ids, regions)
        paths.append(export_index(index, folder, version, keep))
        # a SearchIndex and its traced functions form reference cycles:
        # collect each shard's before the next one is built
        del embeddings, ids, regions, index
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
    settings=None,
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
    indexes) or merge them into one (`merge_indexes`). `settings`
    (`retrieval.ann.IndexSettings`) choose exact or IVF search (default:
    exact below 100,000 images). Returns the list of
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

        described = []

        def module(embeddings, ids, regions):
            index = search_module(
                encoder, embeddings, ids, root, regions, **rerank,
                settings=settings, model_dir=model_dir,
            )  # fmt: skip
            described.append(index.describe())
            return index

        paths = _export_slices(spool, size, output, version, keep, module)
    finally:
        spool.close()
    if verbose:
        print(_summary(report.kept, images, shard, model_dir, paths, output))
        print(described[-1])
        if rerank["rerank_depth"]:
            print(_rerank_summary(rerank, spool.region_shape))
    return paths


def merge_indexes(
    model, inputs, output, version=None, keep=None, settings=None, verbose=True
):
    """One search SavedModel from several (e.g. the shards of `--shard i/N`)
    made with the same retrieval model and gallery folder (`settings`: how
    the merged one searches; IVF inputs are merged from their stored
    vectors)."""
    if not inputs:
        raise ValueError("Give the indexes to merge.")
    model_dir = resolve_version_dir(model)
    paths = [v for i in inputs for v in index_versions(i)]
    stored = [read_index(path) for path in paths]
    for path, s in zip(paths, stored, strict=True):
        check_model(s, model_dir, path)
    roots = {s.root for s in stored}
    if len(roots) != 1:
        raise ValueError(
            f"The indexes cover different gallery folders: {sorted(roots)}"
        )
    ids = np.concatenate([s.ids for s in stored]).astype(str)
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("The indexes share images: were they made with --shard i/N?")
    reranks = {(s.rerank_depth, s.rerank_weight) for s in stored}
    if len(reranks) != 1:
        raise ValueError(
            "The indexes re-rank differently (depth, weight): "
            f"{sorted(reranks)}; build them with the same --rerank-depth."
        )
    depth, weight = reranks.pop()
    encoder = tf.saved_model.load(model_dir)
    regions = np.concatenate([s.regions for s in stored]) if depth else None
    index = search_module(
        encoder, np.concatenate([s.vectors for s in stored]), ids, roots.pop(),
        regions, weight, depth, settings, model_dir,
    )  # fmt: skip
    path = export_index(index, output, version, keep)
    if verbose:
        print(f"Merged {len(inputs)} indexes ({len(ids)} images) into {path}")
        print(index.describe())
    return path
