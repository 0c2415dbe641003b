"""Grounding: where the matching head looks, checked against object boxes.

A data folder may hold `boxes.json` beside its captions (or in its image
folder): one box per image,
`{"image name": [x0, y0, x1, y1]}` in fractions of the image's width and
height (the demo data generator writes one for its shapes). `evaluate` then
reports the **pointing game**: the share of captions whose most-attended
region (the matching head's token-to-region attention, averaged over heads
and over the caption's content words) overlaps the image's box, with its
chance level (the mean share of regions a box overlaps: what a region picked
at random would score).
"""

import json
import os

import numpy as np
import tensorflow as tf

BOXES_FILE = "boxes.json"

# Words that carry no visual content: their attention is left out of the
# caption's map.
STOPWORDS = frozenset(
    "a an the of at in on to and or is are was be there this that these those "
    "it its with one has have by for from as into picture image photo "
    "located shows showing [UNK]".split()
)


def region_boxes(grid_height, grid_width):
    """`[R, 4]` boxes `(x0, y0, x1, y1)` of a row-major region grid, in
    fractions of the image."""
    rows, cols = np.meshgrid(
        np.arange(grid_height), np.arange(grid_width), indexing="ij"
    )
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    return np.stack(
        [
            cols / grid_width,
            rows / grid_height,
            (cols + 1) / grid_width,
            (rows + 1) / grid_height,
        ],
        axis=1,
    ).astype(np.float64)


def box_overlaps(boxes, grid_height, grid_width):
    """Boolean `[N, R]`: does box n overlap region r (a shared area > 0)?"""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cells = region_boxes(grid_height, grid_width)
    return (
        (boxes[:, None, 0] < cells[None, :, 2])
        & (boxes[:, None, 2] > cells[None, :, 0])
        & (boxes[:, None, 1] < cells[None, :, 3])
        & (boxes[:, None, 3] > cells[None, :, 1])
    )


def pointing_game(attention, boxes, grid_height, grid_width):
    """Pointing-game accuracy of attention maps against boxes.

    Args:
        attention: `[N, R]` one map per caption over a row-major
            `grid_height x grid_width` grid.
        boxes: `[N, 4]` the box of each caption's image, `(x0, y0, x1, y1)`
            in fractions of the image.

    Returns:
        `{"pointing_game": hit share, "pointing_chance": mean share of the
        regions each box overlaps, "pointing_captions": N}`.
    """
    attention = np.asarray(attention, dtype=np.float64)
    if attention.ndim != 2 or attention.shape[1] != grid_height * grid_width:
        raise ValueError(
            f"`attention` must be [N, {grid_height * grid_width}]; received "
            f"shape {attention.shape}."
        )
    overlaps = box_overlaps(boxes, grid_height, grid_width)
    if len(overlaps) != len(attention):
        raise ValueError(f"{len(attention)} attention maps but {len(overlaps)} boxes.")
    if not len(attention):
        return {"pointing_game": 0.0, "pointing_chance": 0.0, "pointing_captions": 0}
    hits = overlaps[np.arange(len(attention)), attention.argmax(axis=1)]
    return {
        "pointing_game": float(hits.mean()),
        "pointing_chance": float(overlaps.mean(axis=1).mean()),
        "pointing_captions": int(len(attention)),
    }


def content_mask(token_ids, vocabulary, stopwords=STOPWORDS):
    """Boolean `[B, L]`: tokens that are words with visual content (not
    padding, not out-of-vocabulary, not a stopword). A caption with none
    keeps all its words."""
    words = np.asarray(vocabulary, dtype=object)[np.asarray(token_ids)]
    return content_words(words, stopwords)


def content_words(words, stopwords=STOPWORDS):
    """`content_mask` of token strings `[B, L]` (`""` for padding)."""
    words = np.asarray(words, dtype=object)
    present = words != ""
    content = present & ~np.isin(words, list(stopwords))
    empty = ~content.any(axis=1)
    content[empty] = present[empty]
    return content


def caption_maps(attention, content):
    """`[B, R]`: each caption's attention averaged over heads and over its
    content words (`attention` `[B, heads, L, R]`, `content` `[B, L]`)."""
    attention = np.asarray(attention, dtype=np.float64).mean(axis=1)  # [B, L, R]
    weights = np.asarray(content, dtype=np.float64)[..., None]
    return (attention * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def find_boxes(folders):
    """The path of the first `boxes.json` in `folders`, or `None`."""
    for folder in folders:
        path = os.path.join(folder, BOXES_FILE)
        if os.path.isfile(path):
            return path
    return None


def read_boxes(path):
    """The boxes of a `boxes.json` file, checked: each box four numbers with
    `0 <= x0 < x1 <= 1` and `0 <= y0 < y1 <= 1`."""
    with open(path, encoding="utf-8") as f:
        try:
            boxes = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}.") from None
    if not isinstance(boxes, dict):
        raise ValueError(f"{path} must map image names to boxes.")
    for name, box in boxes.items():
        ok = (
            isinstance(box, list | tuple)
            and len(box) == 4
            and all(isinstance(v, int | float) for v in box)
            and 0 <= box[0] < box[2] <= 1
            and 0 <= box[1] < box[3] <= 1
        )
        if not ok:
            raise ValueError(
                f"{path}: the box of {name!r} must be [x0, y0, x1, y1] with "
                f"0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1; received {box!r}."
            )
    return boxes


def boxes_for(images, boxes, roots):
    """The box of each image (`None` where `boxes` has none), matched by the
    image's path as given, relative to one of `roots`, or its file name."""
    found = []
    for path in images:
        keys = [path, os.path.basename(path)]
        if os.path.isabs(path):
            keys[1:1] = [os.path.relpath(path, root) for root in roots]
        found.append(next((boxes[k] for k in keys if k in boxes), None))
    return found


def attention_maps(model, regions, texts, batch_size=128):
    """`[N, R]` content-word attention of caption n over the regions
    `regions[n]` (`[N, R, E]` float), through the model's matching head."""
    maps = []
    for start in range(0, len(texts), batch_size):
        batch = tf.constant(texts[start : start + batch_size])
        encoded = model.encode_texts(batch)
        _, attention = model.match_scores(
            regions[start : start + batch_size],
            encoded["tokens"],
            encoded["mask"],
            return_attention=True,
        )
        content = content_words(model.token_words(batch))
        maps.append(caption_maps(attention.numpy(), content))
    return np.concatenate(maps) if maps else np.zeros((0, regions.shape[1]))
