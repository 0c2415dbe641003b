import json
import os

from common.testing import TestCase
from video_understanding.__main__ import main

TINY = [
    "data.demo_clips_per_class=[2,1,1]",
    "data.num_frames=2",
    "model.hidden_dim=16",
    "model.key_dim=8",
    "model.num_mel_bins=16",
    "model.audio_filters=[8]",
    "training.epochs=2",
    "training.batch_size=8",
    "training.precision=float32",
]


class VideoTrainEvaluateTest(TestCase):
    def test_train_then_evaluate(self):
        run = os.path.join(self.get_temp_dir(), "runs", "video")
        args = ["train", "--output", run, "--verbose", "0"]
        for override in TINY:
            args += ["--set", override]
        self.assertEqual(main(args), 0)
        for name in (
            "config.json",
            "classes.txt",
            "history.csv",
            "COMPLETE",
            "checkpoints/best.weights.h5",
            "prepared/prepare.json",
        ):
            self.assertTrue(os.path.isfile(os.path.join(run, name)), name)
        with open(os.path.join(run, "history.csv")) as f:
            self.assertEqual(len(f.read().splitlines()), 3)  # header + 2 epochs
        self.assertEqual(main(["evaluate", "--run", run]), 0)
        with open(os.path.join(run, "metrics.json")) as f:
            metrics = json.load(f)
        for key in (
            "accuracy",
            "top5_accuracy",
            "macro_precision",
            "macro_recall",
            "macro_f1",
            "per_class",
            "confusion_matrix",
        ):
            self.assertIn(key, metrics)
        self.assertEqual(metrics["num_samples"], 8)
        self.assertTrue(os.path.isfile(os.path.join(run, "confusion_matrix.png")))
        # Finished runs are not trained again.
        self.assertEqual(main(args), 0)

    def test_bad_override_is_reported(self):
        run = os.path.join(self.get_temp_dir(), "r")
        self.assertEqual(
            main(["train", "--output", run, "--set", "model.fusion=sum"]), 2
        )
