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


class _Signatures:
    """The functions behind the retrieval signatures, over one model."""

    def __init__(self, model, image_size, max_pixels, rerank_weight):
        self.model = model
        self.image_size = image_size
        self.max_pixels = max_pixels
        self.rerank_weight = rerank_weight

    def _images(self, image_bytes):
        checked = ensure_image_bytes(image_bytes, self.max_pixels)
        return _decode_batch(checked, self.image_size)

    def _text(self, text):
        return ensure_batch(text, "text", 1)

    def embed_image(self, image_bytes):
        images = self._images(image_bytes)
        out = self.model.encode_images(images, training=False)
        return {"embeddings": out["embeddings"]}

    def embed_image_pixels(self, images):
        images = ensure_batch(images, "images", 4, (None, None, 3))
        shape = tf.shape(images)
        has_pixels = tf.debugging.assert_positive(
            shape[1] * shape[2], message="`images` must have pixels (H, W >= 1)"
        )
        with tf.control_dependencies([has_pixels]):
            images = _resize_pixels(images, self.image_size)
        out = self.model.encode_images(images, training=False)
        return {"embeddings": out["embeddings"]}

    def embed_text(self, text):
        out = self.model.encode_texts(self._text(text), training=False)
        return {"embeddings": out["embeddings"]}

    def score(self, image_bytes, text):
        model = self.model
        text, image_bytes = ensure_same_batch(
            {
                "text": self._text(text),
                "image_bytes": ensure_image_bytes(image_bytes, self.max_pixels),
            }
        )
        images = model.encode_images(_decode_batch(image_bytes, self.image_size))
        texts = model.encode_texts(text)
        match = model.match_scores(images["regions"], texts["tokens"], texts["mask"])
        cosine = tf.reduce_sum(images["embeddings"] * texts["embeddings"], axis=-1)
        return {"scores": cosine + self.rerank_weight * match}

    def image_regions(self, image_bytes):
        out = self.model.encode_images(self._images(image_bytes), training=False)
        return {
            "embeddings": out["embeddings"],
            "regions": tf.cast(out["regions"], tf.float32),
        }

    def text_tokens(self, text):
        out = self.model.encode_texts(self._text(text), training=False)
        return {
            "embeddings": out["embeddings"],
            "tokens": tf.cast(out["tokens"], tf.float32),
            "mask": out["mask"],
        }

    def match_regions(self, regions, tokens, mask):
        regions = ensure_batch(regions, "regions", 3, (self.model.num_regions, None))
        regions, tokens, mask = ensure_same_batch(
            {
                "regions": regions,
                "tokens": ensure_batch(tokens, "tokens", 3),
                "mask": ensure_batch(mask, "mask", 2),
            }
        )
        return {"match": self.model.match_scores(regions, tokens, mask, training=False)}

    def endpoints(self):
        """`(name, function, input signature)` of every signature."""
        dim, regions = self.model.embedding_dim, self.model.num_regions
        image_bytes = tf.TensorSpec((None,), tf.string, name="image_bytes")
        text = tf.TensorSpec((None,), tf.string, name="text")
        pixels = tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")
        matching = [
            tf.TensorSpec((None, regions, dim), tf.float32, name="regions"),
            tf.TensorSpec((None, None, dim), tf.float32, name="tokens"),
            tf.TensorSpec((None, None), tf.bool, name="mask"),
        ]
        return [
            ("embed_image", self.embed_image, [image_bytes]),
            ("embed_image_pixels", self.embed_image_pixels, [pixels]),
            ("embed_text", self.embed_text, [text]),
            ("score", self.score, [image_bytes, text]),
            ("image_regions", self.image_regions, [image_bytes]),
            ("text_tokens", self.text_tokens, [text]),
            ("match_regions", self.match_regions, matching),
            ("serving_default", self.embed_text, [text]),
        ]


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
    signatures = _Signatures(model, image_size, max_pixels, rerank_weight)
    for name, function, input_signature in signatures.endpoints():
        archive.add_endpoint(name, function, input_signature=input_signature)
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
