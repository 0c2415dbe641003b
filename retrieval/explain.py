"""A PNG of each word's cross-attention over the image regions."""

import os

import numpy as np
import tensorflow as tf

from common.data import decode_and_resize
from retrieval.grounding import content_words
from retrieval.model import load_trained_model


def word_attention(model, image_size, image_path, text):
    """`(image uint8, words, attention [words, gh, gw], score)` for one pair."""
    if not os.path.isfile(image_path):
        raise FileNotFoundError(f"Image not found: {image_path!r}.")
    with open(image_path, "rb") as f:
        image = decode_and_resize(tf.constant(f.read()), image_size)[None]
    images = model.encode_images(image)
    texts = model.encode_texts(tf.constant([text]))
    score, attention = model.match_scores(
        images["regions"], texts["tokens"], texts["mask"], return_attention=True
    )
    words = [str(w) for w in model.token_words([text])[0] if w]
    if not words:
        raise ValueError(f"The text {text!r} has no tokens after standardisation.")
    # [1, heads, L, R] -> mean over heads -> [words, R]
    weights = attention.numpy()[0].mean(axis=0)[: len(words)]
    height, width = model.grid_shape
    return (
        image.numpy()[0],
        words,
        weights.reshape(len(words), height, width),
        float(score[0]),
    )


def explain(run_dir, image, text, output=None):
    """Writes the attention PNG (default `runs/NAME/explain.png`); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config, model = load_trained_model(run_dir)
    pixels, words, maps, score = word_attention(
        model, config.data.image_size, image, text
    )
    output = output or os.path.join(run_dir, "explain.png")
    # The last panel: the caption's map, its content words' mean (what the
    # pointing game scores).
    content = content_words([words])[0]
    panels = list(zip(words, maps, strict=True))
    panels.append(("content words", maps[content].mean(axis=0)))
    columns = min(len(panels) + 1, 6)
    rows = int(np.ceil((len(panels) + 1) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.9 * rows))
    axes = np.atleast_1d(axes).reshape(-1)
    axes[0].imshow(pixels)
    axes[0].set_title("image", fontsize=9)
    size = pixels.shape[0]
    grid_height, grid_width = maps.shape[1:]
    # One colour scale for all words; uniform attention (1/R everywhere) sits
    # at half of it, so a flat map reads as "no preference", not as a peak.
    top = max(float(maps.max()), 2.0 / maps[0].size)
    for axis, (word, heat) in zip(axes[1:], panels, strict=False):
        axis.imshow(pixels)
        axis.imshow(
            heat,
            cmap="magma",
            alpha=0.6,
            extent=(0, size, size, 0),
            interpolation="nearest",
            vmin=0.0,
            vmax=top,
        )
        # The region grid the head attends over.
        for row in range(1, grid_height):
            axis.axhline(row * size / grid_height, color="white", lw=0.6, alpha=0.7)
        for col in range(1, grid_width):
            axis.axvline(col * size / grid_width, color="white", lw=0.6, alpha=0.7)
        axis.set_xlim(0, size)
        axis.set_ylim(size, 0)
        axis.set_title(word, fontsize=9)
    for axis in axes:
        axis.axis("off")
    figure.suptitle(
        f"{text!r}  (match score {score:.3f}; one colour scale, "
        f"{grid_height}x{grid_width} regions)",
        fontsize=10,
    )
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    print(f"Wrote {output}")
    return output
