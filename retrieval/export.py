"""Export of a trained run as a TF Serving SavedModel (embeddings and scores)."""

import keras
import numpy as np
import tensorflow as tf

from common.data import decode_and_resize
from common.export import export_versioned
from common.serving.checks import ensure_batch, ensure_image_bytes, ensure_same_batch
from common.serving.warmup import sample_jpeg, write_warmup_requests
from retrieval.train import load_trained_model

# Encoded images over this many pixels (by their header) are refused before
# decoding: 50 megapixels, far above any photo a caller should send.
MAX_REQUEST_PIXELS = 50_000_000

SIGNATURES = (
    "embed_image",
    "embed_image_pixels",
    "embed_text",
    "score",
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
    model, image_size, max_pixels=MAX_REQUEST_PIXELS, rerank_weight=1.0
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
    - `serving_default`: `embed_text`.
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
    archive.add_endpoint("serving_default", embed_text, input_signature=[text_spec])
    return archive


def warmup_inputs(image_size):
    """Warmup inputs for each signature (see `common.serving.warmup`)."""
    jpeg = sample_jpeg()

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
    )
    size = config.data.image_size

    def write(tmp):
        archive.write_out(tmp, verbose=False)
        write_warmup_requests(tmp, "retrieval", warmup_inputs(size))

    path = export_versioned(write, output, version=version, keep=keep)
    if verbose:
        print(f"Exported {run_dir} to {path} (signatures: {', '.join(SIGNATURES)})")
    return path
