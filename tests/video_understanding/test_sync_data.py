"""The sync demo task: its label is recoverable from the mp4 files by a
hand-written detector of bounces and clicks, and neither modality alone
depends on it."""

import csv
import os

import av
import numpy as np

from common.testing import TestCase
from video_understanding.demo_data import (
    SYNC_FLOOR,
    generate_sync_clips,
    sync_bounce_times,
    sync_clip,
)


def read_mp4(path):
    with av.open(path) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(path) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        chunks = [
            f.to_ndarray().reshape(-1, f.samples).mean(axis=0)
            for f in container.decode(audio=0)
        ]
    return np.stack(frames), np.concatenate(chunks), rate


def bounces_in(frames, fps, side):
    """Times at which the shape in one half of the frame turns from falling
    to rising: local maxima of its lowest saturated row, in the lower half
    of its range (frames fall between the instants it touches the floor)."""
    _, height, width, _ = frames.shape
    half = frames[:, :, : width // 2] if side == "left" else frames[:, :, width // 2 :]
    saturation = half.max(axis=3).astype(int) - half.min(axis=3)
    lowest = np.array(
        [np.nonzero(s.max(axis=1) > 80)[0].max(initial=0) for s in saturation]
    )
    near_floor = lowest >= (lowest.min() + lowest.max()) / 2
    assert lowest.max() <= SYNC_FLOOR * height + 1, "a shape below the floor"
    times = []
    for i in range(len(lowest)):
        before = lowest[i - 1] if i else -1
        after = lowest[i + 1] if i + 1 < len(lowest) else -1
        if near_floor[i] and lowest[i] >= before and lowest[i] > after:
            times.append(i / fps)
    return np.array(times)


def clicks_in(audio, rate):
    """Onset times of the clicks: where the envelope first rises above 0.2."""
    loud = np.abs(audio) > 0.2
    onsets, last = [], -1.0
    for index in np.flatnonzero(loud):
        t = index / rate
        if t - last > 0.1:
            onsets.append(t)
        last = t
    return np.array(onsets)


def mismatch(clicks, bounces):
    if not len(bounces) or not len(clicks):
        return np.inf
    return float(np.mean([np.min(np.abs(bounces - c)) for c in clicks]))


class SyncTaskTest(TestCase):
    def test_label_recoverable_from_files_by_a_detector(self):
        root = self.get_temp_dir()
        fps = 16
        manifest = generate_sync_clips(root, clips_per_class=(4, 1, 1), fps=fps)
        with open(manifest) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 12)
        self.assertEqual({r["label"] for r in rows}, {"left", "right"})
        for row in rows:
            frames, audio, rate = read_mp4(os.path.join(root, row["path"]))
            clicks = clicks_in(audio, rate)
            self.assertEqual(len(clicks), 2, row["path"])
            left = bounces_in(frames, fps, "left")
            right = bounces_in(frames, fps, "right")
            self.assertGreaterEqual(len(left), 2, row["path"])
            self.assertGreaterEqual(len(right), 2, row["path"])
            guess = (
                "left" if mismatch(clicks, left) < mismatch(clicks, right) else "right"
            )
            self.assertEqual(guess, row["label"], row["path"])
            # The clicks are at the sounding shape's bounces (within a frame
            # and the AAC encoder's delay).
            sounding = left if row["label"] == "left" else right
            self.assertLess(mismatch(clicks, sounding), 1.5 / fps, row["path"])

    def test_frames_do_not_depend_on_the_label(self):
        for seed in range(3):
            left = sync_clip("left", np.random.default_rng(seed), size=32)
            right = sync_clip("right", np.random.default_rng(seed), size=32)
            np.testing.assert_array_equal(left[0], right[0])
            # Same bounces, different sound: the sound follows the label.
            self.assertFalse(np.array_equal(left[1], right[1]))

    def test_sound_depends_only_on_the_sounding_shapes_bounces(self):
        # Both shapes' bounce times are drawn alike (exchangeable): a clip
        # labelled "left" has the same sound as one labelled "right" whose
        # shapes' times are swapped, so the sound alone cannot tell the label.
        rng = np.random.default_rng(5)
        left, right = sync_bounce_times(rng, 2.0)
        from video_understanding.demo_data import render_clicks

        a = render_clicks(left, np.random.default_rng(1), 2.0, 16000)
        b = render_clicks(left, np.random.default_rng(1), 2.0, 16000)
        np.testing.assert_array_equal(a, b)
        # Over many draws, each shape's first bounce has the same distribution.
        draws = np.array(
            [
                [t[0] for t in sync_bounce_times(np.random.default_rng(s), 2.0)]
                for s in range(400)
            ]
        )
        self.assertLess(abs(draws[:, 0].mean() - draws[:, 1].mean()), 0.08)

    def test_bounces_are_apart(self):
        for seed in range(50):
            left, right = sync_bounce_times(np.random.default_rng(seed), 2.0)
            times = np.sort(np.concatenate([left, right]))
            self.assertGreaterEqual(np.diff(times).min(), 0.3)
            self.assertTrue((times > 0.19).all() and (times < 1.81).all())
