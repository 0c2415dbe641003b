"""Small files for the retrieval tests, written by the tests themselves."""

import os

import numpy as np
from PIL import Image

TINY_OVERRIDES = [
    "data.image_size=32",
    "model.feature_layer=block5_conv3",
    "model.embedding_dim=16",
    "model.vocabulary_size=64",
    "model.sequence_length=8",
    "model.word_embedding_dim=8",
    "model.text_hidden_dim=8",
    "model.num_heads=2",
    "model.key_dim=8",
    "training.batch_size=8",
    "training.epochs=2",
    "training.warmup_steps=2",
    "training.validation_batch_size=16",
    "training.rerank_top_k=3",
    "training.precision=float32",
    "data.demo_train_images=24",
    "data.demo_val_images=8",
    "data.demo_test_images=10",
]


def write_image(path, size=(40, 30), colour=(200, 30, 30), mode="RGB", fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(abs(hash(path)) % (2**32))
    pixels = np.clip(
        np.array(colour)[None, None] + rng.integers(-20, 20, (size[1], size[0], 3)),
        0,
        255,
    ).astype(np.uint8)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path
