"""A search SavedModel holding a gallery: top-k images for a text or an image."""

import fnmatch
import os

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common.data import SkipReport
from common.export import export_versioned, resolve_version_dir
from common.serving.checks import ensure_batch, ensure_same_batch
from common.serving.warmup import sample_jpeg, write_warmup_requests
from retrieval.data import check_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class SearchIndex(tf.Module):
    """Gallery embeddings and ids beside the retrieval SavedModel that made them.

    Its signatures embed the query with that model and return the top-k
    gallery ids and cosine scores in one call.
    """

    def __init__(self, encoder, embeddings, ids, gallery_root):
        super().__init__()
        self.encoder = encoder
        self.embeddings = tf.Variable(embeddings, trainable=False, name="embeddings")
        self.ids = tf.Variable(ids, trainable=False, name="ids")
        self.gallery_root = tf.Variable(
            gallery_root, trainable=False, name="gallery_root"
        )

    def _top_k(self, queries, k):
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
            k_max = tf.reduce_max(k)
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
        text = ensure_batch(text, "text", 1)
        queries = self.encoder.signatures["embed_text"](text=text)["embeddings"]
        return self._top_k(queries, k)

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

    # Not a serving signature (TF Serving's batching refuses a signature
    # without batched inputs): `index = tf.saved_model.load(path)`, then
    # `index.gallery_info()` (keep `index` alive: it holds the variables).
    @tf.function(input_signature=[])
    def gallery_info(self):
        return {
            "size": tf.shape(self.ids)[0],
            "gallery_root": self.gallery_root,
        }


def list_gallery(images_dir, pattern="*"):
    """Image files under `images_dir` whose name matches the glob `pattern`."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"Gallery folder not found: {images_dir!r}.")
    files = []
    for folder, _, names in os.walk(images_dir):
        for name in names:
            if name.lower().endswith(IMAGE_EXTENSIONS) and fnmatch.fnmatch(
                name, pattern
            ):
                files.append(os.path.join(folder, name))
    return sorted(files)


def embed_gallery(encoder, files, batch_size, report, verbose=True):
    signature = encoder.signatures["embed_image"]
    kept, embeddings = [], []
    for start in tqdm(
        range(0, len(files), batch_size),
        desc="Embedding gallery",
        unit="batch",
        disable=not verbose,
    ):
        batch_files, batch_bytes = [], []
        for path in files[start : start + batch_size]:
            problem = check_image(path)
            if problem:
                report.skip(problem, path)
                continue
            with open(path, "rb") as f:
                batch_bytes.append(f.read())
            batch_files.append(path)
        if not batch_bytes:
            continue
        out = signature(image_bytes=tf.constant(batch_bytes))["embeddings"]
        embeddings.append(out.numpy())
        kept.extend(batch_files)
    return kept, embeddings


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


def export_index(encoder, embeddings, ids, root, output, version=None, keep=None):
    """Writes a `SearchIndex` over `embeddings` / `ids` as the next version of
    `output` (atomically, with warmup requests); returns its folder."""
    index = SearchIndex(encoder, embeddings, ids, root)
    signatures = {
        "search_by_text": index.search_by_text,
        "search_by_image": index.search_by_image,
        "serving_default": index.search_by_text,
    }
    jpeg = sample_jpeg()
    k = min(10, len(ids))
    warmup = {
        "search_by_text": lambda b: {"text": ["a photo"] * b, "k": [k] * b},
        "search_by_image": lambda b: {"image_bytes": [jpeg] * b, "k": [k] * b},
        "serving_default": lambda b: {"text": ["a photo"] * b, "k": [k] * b},
    }

    def write(tmp):
        tf.saved_model.save(index, tmp, signatures=signatures)
        write_warmup_requests(tmp, "retrieval_index", warmup)

    return export_versioned(write, output, version=version, keep=keep)


def build_index(
    model,
    images,
    output="saved_models/retrieval_index",
    batch_size=32,
    version=None,
    keep=None,
    pattern="*",
    shard=None,
    verbose=True,
):
    """Embeds every image under `images` (whose name matches the glob
    `pattern`) and exports a search SavedModel.

    With `shard=(i, N)` only every N-th image from the i-th on (in sorted
    order) is indexed, so N processes can index one gallery in parallel;
    search the shards together (`retrieval.search.search` takes several
    indexes) or merge them into one (`merge_indexes`). Returns the new
    version folder. Ids are the image paths relative to `images`.
    """
    model_dir = resolve_version_dir(model)
    encoder = tf.saved_model.load(model_dir)
    files = list_gallery(images, pattern)
    if shard is not None:
        index, count = shard
        files = files[index::count]
    if not files:
        raise ValueError(f"No image file matching {pattern!r} under {images!r}.")
    report = SkipReport(images)
    kept, embeddings = embed_gallery(encoder, files, batch_size, report, verbose)
    report.kept = len(kept)
    if not kept:
        raise ValueError(f"No usable image in {images!r}: {report.summary()}")
    if report.skipped and verbose:
        print("Skipped: " + report.summary())
    root = os.path.abspath(images)
    ids = np.array([os.path.relpath(p, root) for p in kept])
    path = export_index(
        encoder, np.concatenate(embeddings), ids, root, output, version, keep
    )
    if verbose:
        part = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        print(
            f"Indexed {len(kept)} images{part} from {images} with {model_dir} "
            f"into {path}"
        )
    return path


def merge_indexes(model, inputs, output, version=None, keep=None, verbose=True):
    """One search SavedModel from several (e.g. the shards of `--shard i/N`)
    made with the same retrieval model and gallery folder."""
    if not inputs:
        raise ValueError("Give the indexes to merge.")
    embeddings, ids, roots = [], [], set()
    for path in inputs:
        loaded = tf.saved_model.load(resolve_version_dir(path))
        embeddings.append(loaded.embeddings.numpy())
        ids.append(loaded.ids.numpy())
        roots.add(loaded.gallery_root.numpy().decode("utf-8"))
    if len(roots) != 1:
        raise ValueError(
            f"The indexes cover different gallery folders: {sorted(roots)}"
        )
    ids = np.concatenate(ids)
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("The indexes share images: were they made with --shard i/N?")
    encoder = tf.saved_model.load(resolve_version_dir(model))
    path = export_index(
        encoder, np.concatenate(embeddings), ids, roots.pop(), output, version, keep
    )
    if verbose:
        print(f"Merged {len(inputs)} indexes ({len(ids)} images) into {path}")
    return path
