import csv
import os

import numpy as np

from common.data.video import decode_clip
from common.testing import TestCase
from video_understanding.demo_data import CLASSES, PITCHES, generate_demo_clips


class DemoClipsTest(TestCase):
    def test_clips_carry_direction_in_frames_and_pitch_in_audio(self):
        root = self.get_temp_dir()
        manifest = generate_demo_clips(
            root, clips_per_class=(2, 1, 1), seconds=0.5, fps=8, size=32
        )
        with open(manifest) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 8 * 4)
        self.assertEqual({r["label"] for r in rows}, set(CLASSES))
        self.assertEqual({r["split"] for r in rows}, {"train", "val", "test"})
        for row in rows[::4]:
            label = row["label"]
            direction, pitch = label.split("_")
            clip = decode_clip(
                os.path.join(root, row["path"]), 4, 32, sample_rate=16000
            )
            spectrum = np.abs(np.fft.rfft(clip.audio))
            peak = np.argmax(spectrum) * 16000 / len(clip.audio)
            self.assertAlmostEqual(peak, PITCHES[pitch], delta=0.05 * PITCHES[pitch])
            # The shape is the part that differs from the background: follow
            # its centre of mass from the first to the last sampled frame.
            frames = clip.frames.astype(np.float32)
            centres = []
            for frame in frames:
                background = np.median(frame.reshape(-1, 3), axis=0)
                mask = np.abs(frame - background).sum(axis=-1) > 90
                ys, xs = np.nonzero(mask)
                centres.append((xs.mean(), ys.mean()))
            dx = centres[-1][0] - centres[0][0]
            dy = centres[-1][1] - centres[0][1]
            moved = {"right": dx > 3, "left": dx < -3, "down": dy > 3, "up": dy < -3}
            self.assertTrue(moved[direction], f"{label}: dx={dx:.1f}, dy={dy:.1f}")
        # A second call with the same arguments reuses the files.
        self.assertEqual(
            generate_demo_clips(
                root, clips_per_class=(2, 1, 1), seconds=0.5, fps=8, size=32
            ),
            manifest,
        )
