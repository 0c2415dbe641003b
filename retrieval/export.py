"""Export of a trained run as a TF Serving SavedModel (embeddings and scores)."""

import keras
import numpy as np
import tensorflow as tf

from common.data import decode_and_resize
from common.data.limits import MAX_IMAGE_PIXELS
from common.export import export_versioned
from common.serving.checks import ensure_batch, ensure_image_bytes, ensure_same_batch
from common.serving.warmup import sample_jpeg, write_warmup_requests
from retrieval.model import load_trained_model

# Encoded images over this many pixels (by their header) are refused before
# decoding: 50 megapixels, far above any photo a caller should send.
MAX_REQUEST_PIXELS = MAX_IMAGE_PIXELS

SIGNATURES = (
    "embed_image",
    "embed_image_pixels",
    "embed_text",
    "score",
    "image_regions",
    "text_tokens",
    "match_regions",
    "serving_default",
)


def _decode_batch(image_bytes, image_size):
    return tf.map_fn(
        lambda b: decode_and_resize(b, image_size),
        image_bytes,
        fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.uint8),
    )


def _resize_pixels(images, image_size):
    resized = tf.image.resize(images, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def make_export_archive(
    model,
    image_size,
    max_pixels=MAX_REQUEST_PIXELS,
    rerank_weight=1.0,
    rerank_top_k=20,
):
    """An `ExportArchive` with the retrieval signatures of `model`.

    - `embed_image`: `image_bytes` string `[None]` (encoded JPEG/PNG) ->
      `embeddings` float32 `[None, D]`.
    - `embed_image_pixels`: `images` uint8 `[None, H, W, 3]` (any size; resized
      like the training pipeline) -> `embeddings`.
    - `embed_text`: `text` string `[None]` -> `embeddings`.
    - `score`: `image_bytes` `[None]`, `text` `[None]` -> `scores` float32
      `[None]`: each pair's re-ranking score, the dual encoder's cosine plus
      `rerank_weight` times the matching head's probability (what `evaluate`
      ranks the top candidates by).
    - `image_regions`: `image_bytes` -> `embeddings` and `regions` float32
      `[None, R, E]` (the matching head's image input).
    - `text_tokens`: `text` -> `embeddings`, `tokens` float32 `[None, L, E]`
      and `mask` bool `[None, L]`.
    - `match_regions`: `regions`, `tokens`, `mask` (paired rows) -> `match`
      float32 `[None]`, the matching head's probability: what a search index
      re-ranks with, without decoding the gallery again.
    - `serving_default`: `embed_text`.

    The re-ranking defaults are saved beside them (`rerank_defaults(loaded)`).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)

    def checked_bytes(image_bytes):
        return ensure_image_bytes(image_bytes, max_pixels)

    def checked_text(text):
        return ensure_batch(text, "text", 1)

    def embed_image(image_bytes):
        images = _decode_batch(checked_bytes(image_bytes), image_size)
        return {"embeddings": model.encode_images(images, training=False)["embeddings"]}

    def embed_image_pixels(images):
        images = ensure_batch(images, "images", 4, (None, None, 3))
        shape = tf.shape(images)
        has_pixels = tf.debugging.assert_positive(
            shape[1] * shape[2], message="`images` must have pixels (H, W >= 1)"
        )
        with tf.control_dependencies([has_pixels]):
            images = _resize_pixels(images, image_size)
        return {"embeddings": model.encode_images(images, training=False)["embeddings"]}

    def embed_text(text):
        text = checked_text(text)
        return {"embeddings": model.encode_texts(text, training=False)["embeddings"]}

    def score(image_bytes, text):
        text, image_bytes = ensure_same_batch(
            {"text": checked_text(text), "image_bytes": checked_bytes(image_bytes)}
        )
        images = model.encode_images(_decode_batch(image_bytes, image_size))
        texts = model.encode_texts(text)
        match = model.match_scores(images["regions"], texts["tokens"], texts["mask"])
        cosine = tf.reduce_sum(images["embeddings"] * texts["embeddings"], axis=-1)
        return {"scores": cosine + rerank_weight * match}

    def image_regions(image_bytes):
        images = _decode_batch(checked_bytes(image_bytes), image_size)
        out = model.encode_images(images, training=False)
        return {
            "embeddings": out["embeddings"],
            "regions": tf.cast(out["regions"], tf.float32),
        }

    def text_tokens(text):
        out = model.encode_texts(checked_text(text), training=False)
        return {
            "embeddings": out["embeddings"],
            "tokens": tf.cast(out["tokens"], tf.float32),
            "mask": out["mask"],
        }

    def match_regions(regions, tokens, mask):
        regions = ensure_batch(regions, "regions", 3, (model.num_regions, None))
        tokens = ensure_batch(tokens, "tokens", 3)
        mask = ensure_batch(mask, "mask", 2)
        regions, tokens, mask = ensure_same_batch(
            {"regions": regions, "tokens": tokens, "mask": mask}
        )
        return {"match": model.match_scores(regions, tokens, mask, training=False)}

    bytes_spec = tf.TensorSpec((None,), tf.string, name="image_bytes")
    text_spec = tf.TensorSpec((None,), tf.string, name="text")
    archive.add_endpoint("embed_image", embed_image, input_signature=[bytes_spec])
    archive.add_endpoint(
        "embed_image_pixels",
        embed_image_pixels,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")],
    )
    archive.add_endpoint("embed_text", embed_text, input_signature=[text_spec])
    archive.add_endpoint("score", score, input_signature=[bytes_spec, text_spec])
    archive.add_endpoint("image_regions", image_regions, input_signature=[bytes_spec])
    archive.add_endpoint("text_tokens", text_tokens, input_signature=[text_spec])
    dim = model.embedding_dim
    archive.add_endpoint(
        "match_regions",
        match_regions,
        input_signature=[
            tf.TensorSpec((None, model.num_regions, dim), tf.float32, name="regions"),
            tf.TensorSpec((None, None, dim), tf.float32, name="tokens"),
            tf.TensorSpec((None, None), tf.bool, name="mask"),
        ],
    )
    archive.add_endpoint("serving_default", embed_text, input_signature=[text_spec])
    for name, value in (
        ("rerank_weight", float(rerank_weight)),
        ("rerank_top_k", int(rerank_top_k)),
    ):
        archive.add_variable_collection(
            name, [tf.Variable(value, trainable=False, name=name)]
        )
    return archive


def rerank_defaults(loaded):
    """`(weight, top_k)` saved in a loaded retrieval SavedModel (`(1.0, 20)`
    for one exported before they were saved)."""
    weight = getattr(loaded, "rerank_weight", None)
    top_k = getattr(loaded, "rerank_top_k", None)
    if weight is None or top_k is None:
        return 1.0, 20
    return float(weight[0].numpy()), int(top_k[0].numpy())


def warmup_inputs(image_size, model):
    """Warmup inputs for each signature (see `common.serving.warmup`)."""
    jpeg = sample_jpeg()
    regions = (model.num_regions, model.embedding_dim)
    tokens = (model.sequence_length, model.embedding_dim)

    def match(batch):
        return {
            "regions": np.zeros((batch,) + regions, np.float32),
            "tokens": np.zeros((batch,) + tokens, np.float32),
            "mask": np.ones((batch, tokens[0]), bool),
        }

    def pixels(batch):
        return {"images": np.full((batch, image_size, image_size, 3), 128, np.uint8)}

    return {
        "embed_image": lambda batch: {"image_bytes": [jpeg] * batch},
        "embed_image_pixels": pixels,
        "embed_text": lambda batch: {"text": ["a photo of a dog"] * batch},
        "score": lambda batch: {
            "image_bytes": [jpeg] * batch,
            "text": ["a photo of a dog"] * batch,
        },
        "image_regions": lambda batch: {"image_bytes": [jpeg] * batch},
        "text_tokens": lambda batch: {"text": ["a photo of a dog"] * batch},
        "match_regions": match,
        "serving_default": lambda batch: {"text": ["a photo of a dog"] * batch},
    }


def export(
    run_dir, output="saved_models/retrieval", version=None, keep=None, verbose=True
):
    """Writes the next version of `output` atomically; returns its folder."""
    config, model = load_trained_model(run_dir)
    weight = config.training.rerank_weight
    archive = make_export_archive(
        model,
        config.data.image_size,
        rerank_weight=1.0 if weight is None else weight,
        rerank_top_k=config.training.rerank_top_k,
    )
    size = config.data.image_size

    def write(tmp):
        archive.write_out(tmp, verbose=False)
        write_warmup_requests(tmp, "retrieval", warmup_inputs(size, model))

    path = export_versioned(write, output, version=version, keep=keep)
    if verbose:
        print(f"Exported {run_dir} to {path} (signatures: {', '.join(SIGNATURES)})")
    return path
