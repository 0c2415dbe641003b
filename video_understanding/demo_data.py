"""Synthetic labelled clips with sound for the video demo: real mp4 files.

Each clip shows a shape (random kind and colour) moving in one of 4 directions
over a noisy background, with a tone at one of 2 pitches (plus noise) on an
AAC track: 8 classes = direction x pitch. Video alone can tell only the
direction (at most 50% accuracy), audio alone only the pitch (at most 25%).

Layout: one folder per class (`ROOT/<class>/<clip>.mp4`, as UCF101) and a
`manifest.csv` (`path,label,split`) with a fixed train/val/test split.
"""

import csv
import os

import numpy as np
from PIL import Image, ImageDraw

from common.data.files import read_text
from common.data.video import write_clip

DIRECTIONS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
PITCHES = {"low": 440.0, "high": 1320.0}
CLASSES = [f"{d}_{p}" for d in DIRECTIONS for p in PITCHES]
SHAPE_COLOURS = ((220, 40, 40), (40, 170, 60), (40, 80, 220), (235, 210, 40))


def render_frames(direction, rng, num_frames, size):
    dx, dy = DIRECTIONS[direction]
    radius = size * rng.uniform(0.12, 0.18)
    travel = size * 0.5
    # Start so that the whole path stays inside the frame.
    cx = size / 2 - dx * travel / 2 + rng.uniform(-0.1, 0.1) * size * (dx == 0)
    cy = size / 2 - dy * travel / 2 + rng.uniform(-0.1, 0.1) * size * (dy == 0)
    colour = SHAPE_COLOURS[rng.integers(len(SHAPE_COLOURS))]
    kind = rng.integers(3)
    background = rng.integers(180, 235)
    frames = []
    for i in range(num_frames):
        progress = i / max(num_frames - 1, 1)
        x, y = cx + dx * travel * progress, cy + dy * travel * progress
        pixels = np.full((size, size, 3), background, np.int16)
        pixels += rng.integers(-10, 11, pixels.shape, dtype=np.int16)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        box = (x - radius, y - radius, x + radius, y + radius)
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon(
                [(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)],
                fill=colour,
            )
        frames.append(np.asarray(image))
    return np.stack(frames)


def render_audio(pitch, rng, seconds, sample_rate):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    frequency = PITCHES[pitch] * rng.uniform(0.97, 1.03)
    amplitude = rng.uniform(0.2, 0.5)
    signal = amplitude * np.sin(2 * np.pi * frequency * t)
    signal += rng.normal(0, 0.03, t.shape)
    return np.clip(signal, -1, 1).astype(np.float32)


def generate_demo_clips(
    output_dir,
    clips_per_class=(60, 10, 20),
    seconds=1.0,
    fps=16,
    size=64,
    sample_rate=16000,
    seed=0,
):
    """Writes the clips and `manifest.csv`; returns the manifest path.

    `clips_per_class` is `(train, val, test)`. Reuses a complete earlier
    output made with the same arguments.
    """
    manifest = os.path.join(output_dir, "manifest.csv")
    stamp = os.path.join(output_dir, ".complete")
    signature = repr((tuple(clips_per_class), seconds, fps, size, sample_rate, seed))
    if read_text(stamp) == signature:
        return manifest
    rng = np.random.default_rng(seed)
    num_frames = int(round(seconds * fps))
    rows = []
    for label in CLASSES:
        direction, pitch = label.split("_")
        folder = os.path.join(output_dir, label)
        os.makedirs(folder, exist_ok=True)
        index = 0
        for split, count in zip(("train", "val", "test"), clips_per_class, strict=True):
            for _ in range(count):
                name = f"{label}_{index:04d}.mp4"
                write_clip(
                    os.path.join(folder, name),
                    render_frames(direction, rng, num_frames, size),
                    fps,
                    audio=render_audio(pitch, rng, seconds, sample_rate),
                    sample_rate=sample_rate,
                )
                rows.append((f"{label}/{name}", label, split))
                index += 1
    tmp = manifest + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    os.replace(tmp, manifest)
    with open(stamp, "w", encoding="utf-8") as f:
        f.write(signature)
    return manifest
