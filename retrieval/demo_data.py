"""Synthetic image-caption data for the demo: real JPEG files + captions.txt.

Each image shows one shape (3 kinds) of one colour (6) in one cell of a 3x3
grid (9 positions) at one of 2 sizes: 324 attribute combinations. Every image
gets 5 captions from varied templates and synonyms. The test split holds
distinct combinations only, so Recall@1 can reach 100%; train and validation
images are drawn from all combinations, each rendered with its own jitter,
shade and background noise.

The files use the Flickr8k/30k Kaggle layout (`Images/` + `captions.txt` with a
`split` column), so the demo runs the same loader as real data.
"""

import csv
import io
import itertools
import json
import os

import numpy as np
from PIL import Image, ImageDraw

from common.data.files import read_text, write_atomically
from retrieval.grounding import BOXES_FILE

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
}
POSITIONS = {
    (0, 0): ("top left", "upper left"),
    (0, 1): ("top", "top middle"),
    (0, 2): ("top right", "upper right"),
    (1, 0): ("left", "middle left"),
    (1, 1): ("centre", "middle"),
    (1, 2): ("right", "middle right"),
    (2, 0): ("bottom left", "lower left"),
    (2, 1): ("bottom", "bottom middle"),
    (2, 2): ("bottom right", "lower right"),
}
SIZES = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
TEMPLATES = (
    "a {size} {colour} {shape} at the {position}",
    "there is a {size} {colour} {shape} in the {position}",
    "the {position} of the picture has a {size} {colour} {shape}",
    "{size} {colour} {shape} located {position}",
    "an image with one {colour} {shape} that is {size} at the {position}",
)
COMBINATIONS = list(
    itertools.product(SHAPES, COLOURS, POSITIONS, SIZES)
)  # 3 * 6 * 9 * 2 = 324


def render(shape, colour, cell, size, rng, canvas=96):
    """Draws one shape on a noisy background; returns a PIL RGB image and the
    shape's box `[x0, y0, x1, y1]` in fractions of the image."""
    background = rng.integers(200, 245)
    pixels = np.full((canvas, canvas, 3), background, dtype=np.int16)
    pixels += rng.integers(-12, 13, size=pixels.shape, dtype=np.int16)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    step = canvas / 3
    row, col = cell
    cy = (row + 0.5) * step + rng.uniform(-3, 3)
    cx = (col + 0.5) * step + rng.uniform(-3, 3)
    # Small shapes stay large enough for their outline to survive the resize
    # to 64x64: with a 6 px radius, circle/square/triangle were the only
    # attribute the demo model still confused.
    radius = (9.0 if size == "small" else 15.0) + rng.uniform(-1, 1)
    shade = np.clip(np.array(COLOURS[colour]) + rng.integers(-20, 21, 3), 0, 255)
    fill = tuple(int(v) for v in shade)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon(
            [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)],
            fill=fill,
        )
    shape_box = [float(np.clip(v / canvas, 0.0, 1.0)) for v in box]
    return image, shape_box


def captions_for(shape, colour, cell, size, rng):
    captions = []
    for template in TEMPLATES:
        captions.append(
            template.format(
                size=rng.choice(SIZES[size]),
                colour=colour,
                shape=shape,
                position=rng.choice(POSITIONS[cell]),
            )
        )
    return captions


def generate_demo_data(output_dir, num_train=1500, num_val=100, num_test=300, seed=0):
    """Writes `Images/*.jpg`, `captions.txt` (`image,caption,split`) and
    `boxes.json` (each image's shape box, `retrieval.grounding`).

    Returns the path of `captions.txt`. Reuses a complete earlier output made
    with the same arguments.
    """
    if num_test > len(COMBINATIONS):
        raise ValueError(
            f"`num_test` can be at most {len(COMBINATIONS)} (distinct attribute "
            f"combinations); received {num_test}."
        )
    captions_path = os.path.join(output_dir, "captions.txt")
    stamp = os.path.join(output_dir, ".complete")
    signature = f"{num_train},{num_val},{num_test},{seed},boxes"
    if read_text(stamp) == signature:
        return captions_path
    rng = np.random.default_rng(seed)
    images_dir = os.path.join(output_dir, "Images")
    os.makedirs(images_dir, exist_ok=True)
    test_combos = rng.choice(len(COMBINATIONS), num_test, replace=False)
    plan = (
        [("test", COMBINATIONS[i]) for i in test_combos]
        + [
            ("val", COMBINATIONS[i])
            for i in rng.integers(0, len(COMBINATIONS), num_val)
        ]
        + [
            ("train", COMBINATIONS[i])
            for i in rng.integers(0, len(COMBINATIONS), num_train)
        ]
    )
    rows, boxes = [], {}
    for index, (split, (shape, colour, cell, size)) in enumerate(plan):
        name = f"{split}_{index:05d}.jpg"
        image, boxes[name] = render(shape, colour, cell, size, rng)
        image.save(os.path.join(images_dir, name), quality=92)
        rows.extend(
            (name, caption, split)
            for caption in captions_for(shape, colour, cell, size, rng)
        )
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["image", "caption", "split"])
    writer.writerows(rows)
    write_atomically(captions_path, text.getvalue())
    write_atomically(
        os.path.join(output_dir, BOXES_FILE), json.dumps(boxes, indent=0) + "\n"
    )
    write_atomically(stamp, signature)
    return captions_path
