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


def check_export_outside_the_project(test, run, model, imports="", before=None):
    """Exports `run`, loads the export in a fresh process that imports
    TensorFlow (and `imports`) but none of the project, and checks its
    `embed_text` and `embed_image_pixels` against `model` (Keras). `before()`
    runs between the export and the load (e.g. to move tower folders away)."""
    import subprocess
    import sys
    import textwrap

    import tensorflow as tf

    from retrieval.__main__ import main

    exported = os.path.join(test.get_temp_dir(), "export")
    test.assertEqual(main(["export", "--run", run, "--output", exported]), 0)
    version = os.path.join(exported, sorted(os.listdir(exported))[-1])
    texts = ["a big red circle", "small blue square"]
    pixels = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3))
    expected_text = model.encode_texts(tf.constant(texts))["embeddings"].numpy()
    expected_image = model.encode_images(pixels.astype("uint8"))["embeddings"]
    out = os.path.join(test.get_temp_dir(), "out.npz")
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        {imports}
        m = tf.saved_model.load({version!r})
        pixels = tf.constant(np.array({pixels.tolist()!r}, dtype="uint8"))
        np.savez({out!r},
            text=m.signatures["embed_text"](text=tf.constant({texts!r}))[
                "embeddings"].numpy(),
            image=m.signatures["embed_image_pixels"](images=pixels)[
                "embeddings"].numpy())
        mine = [n for n in sys.modules
                if n.split(".")[0] in ("common", "retrieval", "keras_hub")]
        sys.exit("imported: %s" % mine if mine else 0)
    """)
    if before is not None:
        before()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    test.assertEqual(result.returncode, 0, result.stderr[-3000:])
    with np.load(out) as actual:
        np.testing.assert_allclose(actual["text"], expected_text, atol=1e-5)
        np.testing.assert_allclose(
            actual["image"], np.asarray(expected_image), atol=1e-5
        )
