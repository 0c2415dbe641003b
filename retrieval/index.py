"""A search SavedModel holding a gallery: top-k images for a text or an image."""

import fnmatch
import gc
import os
import re

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common.data import SkipReport
from common.data.files import walk_files
from common.export import export_versioned, resolve_version_dir
from common.export.versioned import list_versions, next_version
from common.serving.checks import ensure_batch, ensure_same_batch
from common.serving.warmup import sample_jpeg, write_warmup_requests
from retrieval.data import check_image
from retrieval.records import is_prepared, parse_example, read_metadata, shard_files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


# Region features are stored in this dtype: half the bytes of float32, and
# the matching head's probabilities move by about 1e-3 (tests/retrieval).
REGION_DTYPE = np.float16


class SearchIndex(tf.Module):
    """Gallery embeddings and ids beside the retrieval SavedModel that made them.

    Its signatures embed the query with that model and return the top-k
    gallery ids and scores in one call. With `regions` (each image's region
    features, `[N, R, E]`), `search_by_text` also re-ranks its top
    `rerank_depth` candidates with the model's matching head, scoring each by
    cosine + `rerank_weight` x match probability, as `retrieval evaluate`
    does, in the same call.
    """

    def __init__(
        self,
        encoder,
        embeddings,
        ids,
        gallery_root,
        regions=None,
        rerank_weight=1.0,
        rerank_depth=0,
    ):
        super().__init__()
        self.encoder = encoder
        self.embeddings = tf.Variable(embeddings, trainable=False, name="embeddings")
        self.ids = tf.Variable(ids, trainable=False, name="ids")
        self.gallery_root = tf.Variable(
            gallery_root, trainable=False, name="gallery_root"
        )
        self.has_regions = regions is not None
        if regions is None:
            regions = np.zeros((0, 1, 1), REGION_DTYPE)
            rerank_depth = 0
        self.regions = tf.Variable(
            np.asarray(regions, REGION_DTYPE), trainable=False, name="regions"
        )
        self.rerank_weight = tf.Variable(
            float(rerank_weight), trainable=False, name="rerank_weight"
        )
        self.rerank_depth = tf.Variable(
            int(rerank_depth), trainable=False, name="rerank_depth"
        )

    def _checked_k(self, queries, k):
        size = tf.shape(self.embeddings)[0]
        k = ensure_batch(k, "k", 1)
        k, queries = ensure_same_batch({"k": k, "queries": queries})
        # The checks must run before top_k, which would otherwise fail first
        # with its own message.
        checks = [
            tf.debugging.assert_positive(k, message="`k` must be at least 1"),
            tf.debugging.assert_less_equal(
                k, size, message="`k` is larger than the number of gallery images"
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(queries), tf.reduce_max(k)

    def _top_k(self, queries, k):
        queries, k_max = self._checked_k(queries, k)
        scores = self._scores(queries)
        top = tf.math.top_k(scores, k=k_max)
        return {"ids": tf.gather(self.ids, top.indices), "scores": top.values}

    # XLA-compiled: at batch 1 this product is bound by reading the gallery
    # from memory, and XLA's kernel reads it faster than TF's MatMul; at
    # batch 32, like gallery @ queries^T, it is 2x faster than TF's
    # queries @ gallery^T (bench/search.py). TF Serving on CPU needs
    # --xla_cpu_compilation_enabled=true; on GPU XLA is on.
    @tf.function(jit_compile=True)
    def _scores(self, queries):
        return tf.matmul(queries, self.embeddings, transpose_b=True)

    def _reranked(self, text, k, depth):
        """Top-k of a text query, its first `depth` candidates (per query)
        ordered by the re-ranking score, the rest by cosine."""
        text = ensure_batch(text, "text", 1)
        encoded = self.encoder.signatures["text_tokens"](text=text)
        queries, k_max = self._checked_k(encoded["embeddings"], k)
        depth = ensure_batch(depth, "rerank_depth", 1)
        depth, queries = ensure_same_batch({"rerank_depth": depth, "text": queries})
        size = tf.shape(self.embeddings)[0]
        depth = tf.clip_by_value(depth, 0, size)
        d_max = tf.reduce_max(depth)
        cosine = self._scores(queries)
        top = tf.math.top_k(cosine, k=tf.maximum(k_max, d_max))
        head, tail = top.values[:, :d_max], top.values[:, d_max:]

        def with_match():
            match = self._match(encoded, top.indices[:, :d_max], d_max)
            return head + self.rerank_weight * match

        def without_match():
            return head

        # (Named functions, not lambdas: AutoGraph reads a lambda's source.)
        fused = tf.cond(d_max > 0, with_match, without_match)
        reranked = tf.range(d_max)[None, :] < depth[:, None]
        scores = tf.concat([tf.where(reranked, fused, head), tail], axis=1)
        # Re-ranked candidates stay above the others (cosines are <= 1).
        order = tf.concat([tf.where(reranked, fused + 3.0, head), tail], axis=1)
        best = tf.math.top_k(order, k=k_max).indices
        indices = tf.gather(top.indices, best, batch_dims=1)
        return {
            "ids": tf.gather(self.ids, indices),
            "scores": tf.gather(scores, best, batch_dims=1),
        }

    def _match(self, encoded, candidates, depth):
        """Match probabilities `[B, depth]` of each query's candidates."""
        batch = tf.shape(candidates)[0]
        regions = tf.cast(tf.gather(self.regions, candidates), tf.float32)
        regions = tf.reshape(
            regions, tf.concat([[batch * depth], tf.shape(self.regions)[1:]], 0)
        )
        tokens = tf.repeat(encoded["tokens"], depth, axis=0)
        mask = tf.repeat(encoded["mask"], depth, axis=0)
        match = self.encoder.signatures["match_regions"](
            regions=regions, tokens=tokens, mask=mask
        )["match"]
        return tf.reshape(match, (batch, depth))

    # `k` has one value per query (not a scalar) so that every input has the
    # batch dimension TF Serving's server-side batching needs; the outputs have
    # max(k) columns, best first (a request whose queries all ask the same k,
    # the usual case, gets exactly k).
    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="text"),
            tf.TensorSpec((None,), tf.int32, name="k"),
        ]
    )
    def search_by_text(self, text, k):
        if self.has_regions:
            # One depth per query; `k` is checked (against the queries) later.
            text = ensure_batch(text, "text", 1)
            depth = tf.fill(tf.shape(text)[:1], self.rerank_depth)
            return self._reranked(text, k, depth)
        text = ensure_batch(text, "text", 1)
        queries = self.encoder.signatures["embed_text"](text=text)["embeddings"]
        return self._top_k(queries, k)

    # The same with the re-rank depth chosen per query (0: cosine only).
    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="text"),
            tf.TensorSpec((None,), tf.int32, name="k"),
            tf.TensorSpec((None,), tf.int32, name="rerank_depth"),
        ]
    )
    def search_by_text_reranked(self, text, k, rerank_depth):
        if not self.has_regions:  # (traced when saved; not a signature then)
            return self.search_by_text(text, k)
        return self._reranked(text, k, rerank_depth)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None,), tf.string, name="image_bytes"),
            tf.TensorSpec((None,), tf.int32, name="k"),
        ]
    )
    def search_by_image(self, image_bytes, k):
        image_bytes = ensure_batch(image_bytes, "image_bytes", 1)
        signature = self.encoder.signatures["embed_image"]
        queries = signature(image_bytes=image_bytes)["embeddings"]
        return self._top_k(queries, k)

    def signature_map(self):
        """The serving signatures, by name."""
        signatures = {
            "search_by_text": self.search_by_text,
            "search_by_image": self.search_by_image,
            "serving_default": self.search_by_text,
        }
        if self.has_regions:
            signatures["search_by_text_reranked"] = self.search_by_text_reranked
        return signatures

    # Not a serving signature (TF Serving's batching refuses a signature
    # without batched inputs): `index = tf.saved_model.load(path)`, then
    # `index.gallery_info()` (keep `index` alive: it holds the variables).
    @tf.function(input_signature=[])
    def gallery_info(self):
        region_shape = tf.shape(self.regions)[1:]
        return {
            "size": tf.shape(self.ids)[0],
            "gallery_root": self.gallery_root,
            "rerank_depth": self.rerank_depth,
            "rerank_weight": self.rerank_weight,
            "region_bytes_per_image": tf.reduce_prod(region_shape)
            * (np.dtype(REGION_DTYPE).itemsize if self.has_regions else 0),
        }


def list_gallery(images_dir, pattern="*", report=None):
    """Image files under `images_dir` (linked folders followed) whose name
    matches the glob `pattern`; other matching files are counted in `report`
    by type, and link loops by name."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"Gallery folder not found: {images_dir!r}.")
    report = report if report is not None else SkipReport(images_dir)
    files = []
    on_loop = lambda path: report.skip("symbolic link loop", path)  # noqa: E731
    for path in walk_files(images_dir, on_loop=on_loop):
        name = os.path.basename(path)
        if not fnmatch.fnmatch(name, pattern):
            continue
        if name.lower().endswith(IMAGE_EXTENSIONS):
            files.append(path)
        else:
            extension = os.path.splitext(name)[1].lower() or "no extension"
            report.skip(f"not a readable image type ({extension})", path)
    return sorted(files)


def _folder_batches(images_dir, files, batch_size, report):
    """`(ids, encoded images)` batches of image files; unusable ones reported."""
    for start in range(0, len(files), batch_size):
        ids, blobs = [], []
        for path in files[start : start + batch_size]:
            problem = check_image(path)
            if problem:
                report.skip(problem, path)
                continue
            with open(path, "rb") as f:
                blobs.append(f.read())
            ids.append(os.path.relpath(path, images_dir))
        if blobs:
            yield ids, blobs


def _prepared_batches(folder, pattern, shard, batch_size):
    """`(ids, encoded images)` batches streamed from `retrieval prepare` shards
    (images validated when they were prepared)."""
    files = shard_files(folder, ("train", "val", "test"))
    dataset = tf.data.TFRecordDataset(files)
    if shard is not None:
        dataset = dataset.shard(shard[1], shard[0])
    dataset = dataset.map(parse_example)
    for batch in dataset.batch(batch_size).prefetch(2):
        ids = [i.decode("utf-8") for i in batch["id"].numpy()]
        keep = [
            j
            for j, i in enumerate(ids)
            if fnmatch.fnmatch(os.path.basename(i), pattern)
        ]
        if keep:
            blobs = batch["image"].numpy()
            yield [ids[j] for j in keep], [blobs[j] for j in keep]


class EmbeddingSpool:
    """Gallery embeddings, ids and (optionally) region features written to
    disk as they are computed (raw float32 / float16 rows and one id a line
    in a temporary folder), and read back one slice at a time, so memory does
    not grow with the gallery."""

    def __init__(self, folder):
        import tempfile

        os.makedirs(folder, exist_ok=True)
        self.folder = tempfile.mkdtemp(prefix=".embeddings-", dir=folder)
        self._vectors = open(os.path.join(self.folder, "embeddings.f32"), "wb")
        self._regions = open(os.path.join(self.folder, "regions.f16"), "wb")
        self._ids = open(os.path.join(self.folder, "ids.txt"), "w", encoding="utf-8")
        self.count, self.dim, self.region_shape = 0, None, None

    def add(self, embeddings, ids, regions=None):
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if self.dim is None:
            self.dim = embeddings.shape[1]
        if regions is not None:
            regions = np.ascontiguousarray(regions, dtype=REGION_DTYPE)
            if self.region_shape is None:
                self.region_shape = regions.shape[1:]
            self._regions.write(regions.tobytes())
        self._vectors.write(embeddings.tobytes())
        for image_id in ids:
            if "\n" in image_id:
                raise ValueError(f"An image id holds a line break: {image_id!r}.")
            self._ids.write(image_id + "\n")
        self.count += len(ids)

    def slices(self, size):
        """`(embeddings, ids, regions or None)` of rows `[0, size)`, `[size,
        2 size)`, ..."""
        for f in (self._vectors, self._regions, self._ids):
            f.close()
        row = self.dim * 4
        region_row = (
            int(np.prod(self.region_shape)) * np.dtype(REGION_DTYPE).itemsize
            if self.region_shape is not None
            else 0
        )
        with (
            open(os.path.join(self.folder, "embeddings.f32"), "rb") as vectors,
            open(os.path.join(self.folder, "regions.f16"), "rb") as regions,
            open(os.path.join(self.folder, "ids.txt"), encoding="utf-8") as ids,
        ):
            for start in range(0, self.count, size):
                rows = min(size, self.count - start)
                block = np.frombuffer(vectors.read(rows * row), dtype=np.float32)
                names = [ids.readline().rstrip("\n") for _ in range(rows)]
                features = None
                if region_row:
                    features = np.frombuffer(
                        regions.read(rows * region_row), dtype=REGION_DTYPE
                    ).reshape((rows,) + tuple(self.region_shape))
                yield block.reshape(rows, self.dim), np.array(names), features

    def close(self):
        import shutil

        for f in (self._vectors, self._regions, self._ids):
            f.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def embed_gallery(
    encoder, batches, spool, verbose=True, total=None, with_regions=False
):
    """Embeds `(ids, encoded images)` batches with the retrieval SavedModel's
    `embed_image` signature (`image_regions`, keeping the region features,
    with `with_regions`) into `spool`; returns the number embedded."""
    name = "image_regions" if with_regions else "embed_image"
    signature = encoder.signatures[name]
    progress = tqdm(
        total=total, desc="Embedding gallery", unit="image", disable=not verbose
    )
    for ids, blobs in batches:
        out = signature(image_bytes=tf.constant(blobs))
        regions = out["regions"].numpy() if with_regions else None
        spool.add(out["embeddings"].numpy(), ids, regions)
        progress.update(len(ids))
    progress.close()
    return spool.count


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


def _gallery_source(images, pattern, shard, batch_size, report):
    """`(image root, number of images or None, (ids, bytes) batches)` of a
    folder of image files or a prepared folder."""
    if is_prepared(images):
        root = read_metadata(images)["image_root"]
        return root, None, _prepared_batches(images, pattern, shard, batch_size)
    root = os.path.abspath(images)
    files = list_gallery(images, pattern, report)
    if shard is not None:
        files = files[shard[0] :: shard[1]]
    if not files:
        raise ValueError(f"No image file matching {pattern!r} under {images!r}.")
    return root, len(files), _folder_batches(root, files, batch_size, report)


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
    root, total, batches = _gallery_source(images, pattern, shard, batch_size, report)
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
        part = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        where = paths[0]
        if len(paths) > 1:
            version = os.path.basename(paths[0])
            where = f"{len(paths)} index shards {output}/shard-*/{version}"
        print(
            f"Indexed {report.kept} images{part} from {images} with {model_dir} "
            f"into {where}"
        )
        if rerank["rerank_depth"]:
            per_image = (
                int(np.prod(spool.region_shape)) * np.dtype(REGION_DTYPE).itemsize
            )
            print(
                f"Text searches re-rank their top {rerank['rerank_depth']} with the "
                f"matching head (weight {rerank['rerank_weight']:g}); region "
                f"features {per_image:,} bytes per image (--rerank-depth 0 leaves "
                "them out)."
            )
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
