import json
import os

import numpy as np

from common.data.video import decode_clip
from common.testing import TestCase
from video_understanding.demo_data import generate_demo_clips
from video_understanding.pipeline import prepared_dataset
from video_understanding.prepare import prepare


class PrepareTest(TestCase):
    def test_shards_round_trip_resume_and_skips(self):
        root = os.path.join(self.get_temp_dir(), "clips")
        generate_demo_clips(
            root, clips_per_class=(2, 0, 1), seconds=0.5, fps=8, size=32
        )
        # A corrupt clip listed in the manifest is skipped and reported.
        bad = os.path.join(root, "up_low", "broken.mp4")
        with open(bad, "wb") as f:
            f.write(b"\x00\x00\x00\x18ftypmp42 this is not really a video")
        with open(os.path.join(root, "manifest.csv"), "a") as f:
            f.write("up_low/broken.mp4,up_low,train\n")
        output = os.path.join(self.get_temp_dir(), "prepared")
        settings = dict(
            num_frames=3,
            frame_size=32,
            sample_rate=8000,
            clip_seconds=0.5,
            shard_size=5,
            workers=2,
            val_fraction=0.0,
            verbose=False,
        )
        metadata = prepare(root, output, **settings)
        self.assertEqual(len(metadata["shards"]["train"]), 4)  # 17 clips / 5
        self.assertEqual(len(metadata["shards"]["test"]), 2)  # 8 clips / 5
        self.assertEqual(metadata["skipped"], 1)
        with open(os.path.join(output, "skipped.json")) as f:
            self.assertIn("broken.mp4", json.load(f)[0][0])

        examples = list(prepared_dataset(output, "test"))
        self.assertEqual(len(examples), 8)
        inputs, labels = examples[0]
        self.assertEqual(tuple(inputs["frames"].shape), (3, 32, 32, 3))
        self.assertEqual(tuple(inputs["audio"].shape), (4000,))
        self.assertTrue(bool(inputs["audio_present"]))
        # Same pixels and samples as decoding the clip directly (JPEG, int16).
        import tensorflow as tf

        first = tf.data.TFRecordDataset(
            [os.path.join(output, n) for n in metadata["shards"]["test"]]
        ).take(1)
        path = (
            tf.train.Example.FromString(next(iter(first)).numpy())
            .features.feature["path"]
            .bytes_list.value[0]
            .decode()
        )
        first_test = os.path.relpath(path, root)
        clip = decode_clip(path, 3, 32, sample_rate=8000, clip_seconds=0.5)
        error = np.abs(inputs["frames"].numpy().astype(float) - clip.frames)
        self.assertLess(error.mean(), 3.0)  # noisy background costs JPEG bits
        shuffled = np.abs(inputs["frames"].numpy().astype(float) - clip.frames[::-1])
        self.assertGreater(shuffled.mean(), 3.0)  # the check can tell frames apart
        np.testing.assert_allclose(inputs["audio"].numpy(), clip.audio, atol=1e-4)
        self.assertEqual(
            metadata["class_names"][int(labels[0])], first_test.split("/")[0]
        )

        # Resume: a missing shard is rewritten, the others are kept as they were.
        names = metadata["shards"]["train"]
        kept = {n: os.path.getmtime(os.path.join(output, n)) for n in names[1:]}
        os.remove(os.path.join(output, names[0]))
        prepare(root, output, **settings)
        self.assertTrue(os.path.isfile(os.path.join(output, names[0])))
        for name, mtime in kept.items():
            self.assertEqual(os.path.getmtime(os.path.join(output, name)), mtime)
        self.assertFalse([n for n in os.listdir(output) if n.startswith(".")])

        with self.assertRaisesRegex(ValueError, "other settings"):
            prepare(root, output, **dict(settings, frame_size=48))

    def test_cli_reports_bad_data_clearly(self):
        from video_understanding.__main__ import main

        missing = os.path.join(self.get_temp_dir(), "nowhere")
        self.assertEqual(main(["prepare", "--data", missing, "--output", missing]), 2)
