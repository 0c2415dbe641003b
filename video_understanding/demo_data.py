"""Synthetic labelled clips with sound for the video demo: real mp4 files.

Each clip shows a shape (random kind and colour) moving in one of 4 directions
over a noisy background, with a tone at one of 2 pitches (plus noise) on an
AAC track: 8 classes = direction x pitch. Video alone can tell only the
direction (at most 50% accuracy), audio alone only the pitch (at most 25%).

`generate_sync_clips` writes the sync task (two bouncing shapes, clicks at
one's bounces; the label is which one), which neither modality alone can
solve (see below).

Layout: one folder per class (`ROOT/<class>/<clip>.mp4`, as UCF101) and a
`manifest.csv` (`path,label,split`) with a fixed train/val/test split.
"""

import csv
import io
import os

import numpy as np
from PIL import Image, ImageDraw

from common.data.files import read_text, write_atomically
from common.data.video import write_clip

DIRECTIONS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
PITCHES = {"low": 440.0, "high": 1320.0}
CLASSES = [f"{d}_{p}" for d in DIRECTIONS for p in PITCHES]
SHAPE_COLOURS = ((220, 40, 40), (40, 170, 60), (40, 80, 220), (235, 210, 40))


def _noisy_background(size, background, rng):
    """A `size` x `size` RGB image of grey `background` with +-10 noise."""
    pixels = np.full((size, size, 3), background, np.int16)
    pixels += rng.integers(-10, 11, pixels.shape, dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _draw_shape(draw, kind, x, y, radius, colour):
    """A disc (`kind` 0), a square (1) or a triangle (2) centred at `(x, y)`."""
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
        image = _noisy_background(size, background, rng)
        _draw_shape(ImageDraw.Draw(image), kind, x, y, radius, colour)
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
    seconds=None,
    fps=16,
    size=64,
    sample_rate=16000,
    seed=0,
    task="shapes",
):
    """Writes the clips and `manifest.csv`; returns the manifest path.

    `task` is `"shapes"` (a shape moving in one of four directions with a
    tone of one of two pitches: 8 classes, 1 s clips by default) or
    `"sync"` (two bouncing balls, the sound clicking with one of them:
    `left` / `right`, 2 s by default). `clips_per_class` is `(train, val,
    test)`. Reuses a complete earlier output made with the same arguments.
    """
    if task not in ("shapes", "sync"):
        raise ValueError(f"`task` must be 'shapes' or 'sync'; received {task!r}.")
    if seconds is None:
        seconds = 1.0 if task == "shapes" else 2.0
    num_frames = int(round(seconds * fps))

    def make_clip(label, rng):
        if task == "sync":
            frames, audio, _, _ = sync_clip(label, rng, seconds, fps, size, sample_rate)
            return frames, audio
        direction, pitch = label.split("_")
        frames = render_frames(direction, rng, num_frames, size)
        return frames, render_audio(pitch, rng, seconds, sample_rate)

    settings = (tuple(clips_per_class), seconds, fps, size, sample_rate, seed)
    signature = repr(settings if task == "shapes" else (task, *settings))
    classes = CLASSES if task == "shapes" else SYNC_CLASSES
    return write_clip_set(
        output_dir,
        classes,
        clips_per_class,
        make_clip,
        fps,
        sample_rate,
        seed,
        signature,
    )


def write_clip_set(
    output_dir, classes, clips_per_class, make_clip, fps, sample_rate, seed, signature
):
    """Writes `ROOT/<class>/<class>_NNNN.mp4` clips from `make_clip(label,
    rng) -> (frames, audio)` (one random stream, class by class) and
    `manifest.csv` (`path,label,split`); returns the manifest path. An output
    whose `.complete` stamp holds `signature` is reused."""
    manifest = os.path.join(output_dir, "manifest.csv")
    stamp = os.path.join(output_dir, ".complete")
    if read_text(stamp) == signature:
        return manifest
    rng = np.random.default_rng(seed)
    rows = []
    for label in classes:
        folder = os.path.join(output_dir, label)
        os.makedirs(folder, exist_ok=True)
        index = 0
        for split, count in zip(("train", "val", "test"), clips_per_class, strict=True):
            for _ in range(count):
                name = f"{label}_{index:04d}.mp4"
                frames, audio = make_clip(label, rng)
                write_clip(
                    os.path.join(folder, name),
                    frames,
                    fps,
                    audio=audio,
                    sample_rate=sample_rate,
                )
                rows.append((f"{label}/{name}", label, split))
                index += 1
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["path", "label", "split"])
    writer.writerows(rows)
    write_atomically(manifest, text.getvalue())
    write_atomically(stamp, signature)
    return manifest


# -- the synchronisation task ----------------------------------------------
#
# Two shapes bounce at independent random times, one in each half of the
# frame; the sound track clicks when one of them touches the floor, and the
# label is which one ("left" or "right"). The frames do not depend on the
# label (both shapes bounce alike; `render_sync_frames` never sees it) and
# the sound depends only on the sounding shape's bounce times, which are
# drawn like the other's: video alone and audio alone are at 50% by
# construction, and only lining up the clicks with the bounces in time
# tells the label.

SYNC_CLASSES = ["left", "right"]
SYNC_BOUNCES = 2  # per shape
SYNC_MIN_GAP = 0.3  # seconds between any two bounces of either shape
SYNC_FLOOR = 0.85  # the floor, as a fraction of the frame height
CLICK_FREQUENCY = 2000.0


def sync_bounce_times(rng, seconds, bounces=SYNC_BOUNCES, min_gap=SYNC_MIN_GAP):
    """`(left_times, right_times)`: sorted bounce times of each shape, all
    at least `min_gap` apart and away from the clip's ends."""
    margin = 0.1 * seconds
    for _ in range(1000):
        times = rng.uniform(margin, seconds - margin, 2 * bounces)
        if np.min(np.diff(np.sort(times))) >= min_gap:
            return np.sort(times[:bounces]), np.sort(times[bounces:])
    raise ValueError(
        f"Cannot fit {2 * bounces} bounces {min_gap} s apart in {seconds} s clips."
    )


def bounce_height(t, times, seconds):
    """Height above the floor (0 at each bounce, at most 1) of a shape
    bouncing at `times`: a parabola between consecutive bounces; it falls
    from high before the first and rises after the last (the parabolas'
    other ends are a clip length outside the clip, so no other bounce)."""
    points = np.concatenate([[-seconds], times, [2 * seconds]])
    i = np.clip(np.searchsorted(points, t, side="right") - 1, 0, len(points) - 2)
    s = (t - points[i]) / (points[i + 1] - points[i])
    return 4.0 * s * (1.0 - s)


def render_sync_frames(left_times, right_times, rng, seconds, fps, size):
    """Frames of the two bouncing shapes (a random kind and colour each)."""
    num_frames = int(round(seconds * fps))
    background = rng.integers(180, 235)
    shapes = []
    for centre_x, times in ((0.28, left_times), (0.72, right_times)):
        shapes.append(
            (
                centre_x * size,
                np.asarray(times),
                size * rng.uniform(0.09, 0.12),
                SHAPE_COLOURS[rng.integers(len(SHAPE_COLOURS))],
                rng.integers(3),
            )
        )
    floor, apex = SYNC_FLOOR * size, 0.5 * size
    frames = []
    for i in range(num_frames):
        t = i / fps
        image = _noisy_background(size, background, rng)
        draw = ImageDraw.Draw(image)
        for x, times, radius, colour, kind in shapes:
            y = floor - radius - apex * bounce_height(t, times, seconds)
            _draw_shape(draw, kind, x, y, radius, colour)
        frames.append(np.asarray(image))
    return np.stack(frames)


def render_clicks(times, rng, seconds, sample_rate):
    """A sound track with a short decaying click at each of `times`."""
    n = int(round(seconds * sample_rate))
    signal = rng.normal(0, 0.02, n)
    length = int(0.03 * sample_rate)
    t = np.arange(length) / sample_rate
    for time in times:
        amplitude = rng.uniform(0.4, 0.7)
        click = amplitude * np.sin(2 * np.pi * CLICK_FREQUENCY * t) * np.exp(-t / 0.006)
        start = int(round(time * sample_rate))
        stop = min(start + length, n)
        signal[start:stop] += click[: stop - start]
    return np.clip(signal, -1, 1).astype(np.float32)


def sync_clip(label, rng, seconds=2.0, fps=16, size=64, sample_rate=16000):
    """`(frames, audio, left_times, right_times)` of one clip of the sync
    task. The frames come from their own random stream, drawn before the
    label is looked at."""
    if label not in SYNC_CLASSES:
        raise ValueError(f"`label` must be one of {SYNC_CLASSES}; received {label!r}.")
    left, right = sync_bounce_times(rng, seconds)
    video_rng = np.random.default_rng(rng.integers(2**63))
    audio_rng = np.random.default_rng(rng.integers(2**63))
    frames = render_sync_frames(left, right, video_rng, seconds, fps, size)
    audio = render_clicks(
        left if label == "left" else right, audio_rng, seconds, sample_rate
    )
    return frames, audio, left, right


def generate_sync_clips(output_dir, **settings):
    """The sync task's clips and `manifest.csv` (`ROOT/<left|right>/<clip>.mp4`):
    `generate_demo_clips(output_dir, task="sync", **settings)`."""
    return generate_demo_clips(output_dir, task="sync", **settings)
