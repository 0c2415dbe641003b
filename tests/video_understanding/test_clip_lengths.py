"""Clips of any length train together: real mp4 clips of 0.1 s (a single
frame), 0.4 s, 2 s and 7 s, with and without sound, decode to the same shapes
(cropped to the window or padded with silence) on the prepared path, the raw
path and in `predict`, and batch together in training."""

import os

import numpy as np

from common.data.video import decode_clip, write_clip
from common.testing import TestCase

RATE = 8000
WINDOW = 3.0
FPS = 10
# name -> (seconds, tone Hz or None for no audio track)
CLIPS = {
    "a/one_frame.mp4": (0.1, 500.0),
    "a/short.mp4": (0.4, 700.0),
    "a/silent.mp4": (2.0, None),
    "b/medium.mp4": (2.0, 900.0),
    "b/long.mp4": (7.0, 1100.0),
}


def write_clips(root):
    rng = np.random.default_rng(0)
    for name, (seconds, hz) in CLIPS.items():
        frames = rng.integers(0, 255, (round(seconds * FPS), 48, 64, 3), np.uint8)
        audio = None
        if hz is not None:
            t = np.arange(round(seconds * RATE)) / RATE
            audio = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_clip(path, frames, FPS, audio=audio, sample_rate=RATE)


def dominant_hz(signal):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.fft.rfftfreq(len(signal), 1 / RATE)[np.argmax(spectrum)]


class ClipLengthsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.get_temp_dir(), "clips")
        write_clips(self.root)

    def check_audio(self, name, audio, audio_samples):
        """Checks one clip's decoded sound against the tone written."""
        seconds, hz = CLIPS[name]
        self.assertEqual(audio.shape, (int(WINDOW * RATE),))
        expected_real = 0 if hz is None else round(min(seconds, WINDOW) * RATE)
        self.assertLessEqual(abs(audio_samples - expected_real), RATE // 100, name)
        # padding is exact silence, the real part is the clip's tone
        np.testing.assert_array_equal(audio[audio_samples:], 0.0)
        if hz is not None and audio_samples > RATE // 10:
            self.assertAlmostEqual(dominant_hz(audio[:audio_samples]), hz, delta=30)

    def test_raw_decoding_gives_one_shape(self):
        shapes = set()
        for name in CLIPS:
            clip = decode_clip(
                os.path.join(self.root, name), 4, 32, RATE, clip_seconds=WINDOW
            )
            shapes.add((clip.frames.shape, clip.audio.shape))
            self.check_audio(name, clip.audio, clip.audio_samples)
            self.assertEqual(clip.audio_present, CLIPS[name][1] is not None)
            seconds = CLIPS[name][0]
            self.assertAlmostEqual(clip.window, min(seconds, WINDOW), delta=0.11)
        self.assertEqual(shapes, {((4, 32, 32, 3), (int(WINDOW * RATE),))})
        # the 7 s clip is cropped to the centred 3 s: frames differ over time
        long = decode_clip(os.path.join(self.root, "b/long.mp4"), 4, 32, RATE, WINDOW)
        self.assertAlmostEqual(long.start, 2.0, places=2)
        self.assertGreater(
            np.abs(np.diff(long.frames.astype(float), axis=0)).mean(), 10
        )

    def test_prepared_clips_of_any_length_train_in_one_batch(self):
        import tensorflow as tf

        from video_understanding.__main__ import main
        from video_understanding.pipeline import make_dataset
        from video_understanding.prepare import prepare

        output = os.path.join(self.get_temp_dir(), "prepared")
        metadata = prepare(
            self.root, output, num_frames=4, frame_size=32, sample_rate=RATE,
            clip_seconds=WINDOW, workers=1, val_fraction=0.0, test_fraction=0.0,
            verbose=False,
        )  # fmt: skip
        self.assertEqual(metadata["counts"], {"train": 5, "val": 0, "test": 0})
        self.assertEqual(metadata["without_audio"], 1)
        self.assertEqual(metadata["skipped"], 0)
        for cache in ("none", "memory"):
            batches = list(
                make_dataset(
                    output, "train", 5, 2, False, shuffle=True, cache=cache
                ).take(1)
            )
            self.assertEqual(len(batches), 1)
            inputs, labels = batches[0]
            self.assertEqual(inputs["frames"].shape, (5, 4, 32, 32, 3))
            self.assertEqual(inputs["audio"].shape, (5, int(WINDOW * RATE)))
        # A stream started at epoch 2 is epoch 2 of the one started at 0.
        for cache in ("none", "memory"):

            def epochs(first, cache=cache):
                stream = make_dataset(
                    output, "train", 2, 2, False, shuffle=True, cache=cache,
                    seed=5, first_epoch=first, epochs=4,
                )  # fmt: skip
                return [inputs["audio"].numpy() for inputs, _ in stream]

            full, resumed = epochs(0), epochs(2)
            self.assertEqual(len(full), 12)  # 3 batches (2, 2, 1) x 4 epochs
            for a, b in zip(full[6:], resumed, strict=True):
                np.testing.assert_array_equal(a, b)
            orders = {
                np.concatenate(full[3 * e : 3 * e + 3]).tobytes() for e in range(4)
            }
            self.assertGreater(len(orders), 1)  # reshuffled between epochs
        # each record's sound against its clip's tone
        files = [os.path.join(output, n) for n in metadata["shards"]["train"]]
        from video_understanding.records import record_parser

        parse = record_parser(metadata["settings"])
        for raw in tf.data.TFRecordDataset(files):
            example = tf.train.Example.FromString(raw.numpy())
            path = example.features.feature["path"].bytes_list.value[0].decode()
            real = example.features.feature["audio_samples"].int64_list.value[0]
            inputs, _ = parse(raw)
            self.check_audio(
                os.path.relpath(path, self.root), inputs["audio"].numpy(), real
            )

        # a training run on them (one step of every variable-length clip)
        run = os.path.join(self.get_temp_dir(), "run")
        args = ["train", "--data", output, "--output", run, "--verbose", "0"]
        for override in (
            "data.num_frames=2",  # the prepared folder's 4 frames win
            "model.hidden_dim=16",
            "model.key_dim=8",
            "model.num_mel_bins=16",
            "model.audio_filters=[8]",
            "training.epochs=1",
            "training.batch_size=5",
            "training.precision=float32",
        ):
            args += ["--set", override]
        self.assertEqual(main(args), 0)
        from common.training.config import load_config
        from video_understanding.config import VideoConfig

        config = load_config(VideoConfig, os.path.join(run, "config.json"))
        self.assertEqual(config.data.num_frames, 4)
        self.assertEqual(config.data.clip_seconds, WINDOW)
        self.assertEqual(config.data.sample_rate, RATE)

    def test_predict_decodes_every_length_with_the_exported_window(self):
        from tests.exported_models import exported
        from video_understanding.predict import predict

        models = exported().video
        paths = [os.path.join(self.root, name) for name in CLIPS]
        results = predict(paths, models, k=2)
        self.assertEqual([r["clip"] for r in results], paths)
        for result in results:
            self.assertEqual(len(result["top"]), 2)
            self.assertTrue(all(np.isfinite(t["score"]) for t in result["top"]))
