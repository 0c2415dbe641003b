import json
import os
import sys

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
    def test_mirrored_strategy(self):
        run = os.path.join(self.get_temp_dir(), "runs", "mirrored")
        args = ["train", "--output", run, "--verbose", "0", "--strategy", "mirrored"]
        for override in TINY:
            args += ["--set", override.replace("epochs=2", "epochs=1")]
        self.assertEqual(main(args), 0)
        self.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))

    def test_train_then_evaluate(self):
        import signal

        run = os.path.join(self.get_temp_dir(), "runs", "video")
        args = ["train", "--output", run, "--verbose", "0"]
        for override in TINY:
            args += ["--set", override]

        def mine(signum, frame):
            pass

        before = signal.signal(signal.SIGTERM, mine)
        try:
            self.assertEqual(main(args), 0)
            # train called from Python leaves SIGTERM as it found it
            self.assertIs(signal.getsignal(signal.SIGTERM), mine)
        finally:
            signal.signal(signal.SIGTERM, before)
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
        self.check_evaluate_on_other_data(run)
        # Finished runs are not trained again.
        self.assertEqual(main(args), 0)
        self.check_export_and_predict(run)

    def check_evaluate_on_other_data(self, run):
        import contextlib
        import io
        import shutil

        prepared = os.path.join(run, "prepared")
        self.assertEqual(
            main(["evaluate", "--run", run, "--data", prepared, "--split", "val"]), 0
        )
        with open(os.path.join(run, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual((metrics["split"], metrics["data"]), ("val", prepared))
        # the same clips under other class names, then other clip settings
        other = os.path.join(self.get_temp_dir(), "other")
        shutil.copytree(prepared, other)
        with open(os.path.join(other, "prepare.json")) as f:
            metadata = json.load(f)
        for change, expected in (
            (lambda m: m["class_names"].reverse(), "holds the classes"),
            (lambda m: m["settings"].update(num_frames=5), "num_frames=5"),
        ):
            changed = json.loads(json.dumps(metadata))
            change(changed)
            with open(os.path.join(other, "prepare.json"), "w") as f:
                json.dump(changed, f)
            errors = io.StringIO()
            with contextlib.redirect_stderr(errors):
                code = main(["evaluate", "--run", run, "--data", other])
            self.assertEqual(code, 2)
            self.assertIn(expected, errors.getvalue())
            self.assertIn(other, errors.getvalue())
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = main(["evaluate", "--run", run, "--data", run])
        self.assertEqual(code, 2)
        self.assertIn("is not a prepared folder", errors.getvalue())

    def check_export_and_predict(self, run):
        import subprocess
        import textwrap

        import numpy as np

        from common.data.video import decode_clip
        from video_understanding.model import load_trained_model
        from video_understanding.predict import predict

        models = os.path.join(self.get_temp_dir(), "saved_models", "video")
        self.assertEqual(main(["export", "--run", run, "--output", models]), 0)
        version = os.path.join(models, "1")
        with open(os.path.join(version, "assets.extra", "classes.txt")) as f:
            classes = f.read().split()
        clip_path = os.path.join(run, "clips", classes[0], f"{classes[0]}_0000.mp4")
        results = predict([clip_path], models, k=3)
        self.assertEqual(len(results[0]["top"]), 3)
        self.assertTrue({t["label"] for t in results[0]["top"]} <= set(classes))
        self.assertEqual(main(["predict", clip_path, "--model", models, "--json"]), 0)

        # The SavedModel, loaded by TensorFlow alone, matches the Keras model.
        _, model, _, _ = load_trained_model(run)
        clip = decode_clip(clip_path, 2, 32, sample_rate=16000)
        expected = model(
            {"frames": clip.frames[None], "audio": clip.audio[None]}
        ).numpy()
        tmp = self.get_temp_dir()
        np.save(os.path.join(tmp, "frames.npy"), clip.frames[None])
        np.save(os.path.join(tmp, "audio.npy"), clip.audio[None])
        script = textwrap.dedent(f"""
            import sys
            import numpy as np
            import tensorflow as tf
            serve = tf.saved_model.load({version!r}).signatures["serving_default"]
            frames = np.load({os.path.join(tmp, "frames.npy")!r})
            audio = np.load({os.path.join(tmp, "audio.npy")!r})
            out = serve(frames=tf.constant(frames), audio=tf.constant(audio))
            np.save({os.path.join(tmp, "out.npy")!r}, out["probabilities"].numpy())
            mine = [m for m in sys.modules
                    if m.split(".")[0] in ("common", "video_understanding")]
            sys.exit("imported project modules: %s" % mine if mine else 0)
        """)
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        np.testing.assert_allclose(
            np.load(os.path.join(tmp, "out.npy")), expected, atol=1e-5
        )
        # `k` beyond the export's own top-k: every class, best first, with
        # the probabilities the model gives.
        (every,) = predict([clip_path], models, k=len(classes) + 4)
        order = np.argsort(-expected[0], kind="stable")
        self.assertEqual(
            [t["label"] for t in every["top"]], [classes[i] for i in order]
        )
        np.testing.assert_allclose(
            [t["score"] for t in every["top"]], expected[0][order], atol=1e-5
        )
        with self.assertRaisesRegex(ValueError, "`k` must be a positive integer"):
            predict([clip_path], models, k=0)
        # One line, no traceback, for a version that exists.
        again = ["export", "--run", run, "--output", models, "--version", "1"]
        self.assertEqual(main(again), 2)

    def test_sync_preset_trains_on_sync_clips(self):
        run = os.path.join(self.get_temp_dir(), "runs", "sync")
        args = ["train", "--preset", "demo_sync", "--output", run, "--verbose", "0"]
        for override in TINY + ["model.fusion=early_temporal"]:
            args += ["--set", override.replace("epochs=2", "epochs=1")]
        self.assertEqual(main(args), 0)
        with open(os.path.join(run, "classes.txt")) as f:
            self.assertEqual(f.read().split(), ["left", "right"])
        with open(os.path.join(run, "config.json")) as f:
            config = json.load(f)
        self.assertEqual(config["data"]["demo_task"], "sync")
        self.assertTrue(config["model"]["time_encoding"])
        self.assertEqual(main(["evaluate", "--run", run]), 0)
        bad = ["train", "--output", run + "2", "--set", "data.demo_task=music"]
        self.assertEqual(main(bad), 2)

    def test_bad_override_is_reported(self):
        run = os.path.join(self.get_temp_dir(), "r")
        self.assertEqual(
            main(["train", "--output", run, "--set", "model.fusion=sum"]), 2
        )

    def test_ablate_runs_every_variant(self):
        from video_understanding.ablate import VARIANTS, ablate, fusion_verdict

        output = os.path.join(self.get_temp_dir(), "ablation")
        overrides = [o for o in TINY if not o.startswith("training.epochs")]
        rows = ablate("demo", output, overrides=overrides + ["training.epochs=1"])
        self.assertEqual(len(rows), len(VARIANTS))
        self.assertEqual(rows[-1]["variant"], "audio_only")
        with open(os.path.join(output, "ablation.json"), encoding="utf-8") as f:
            saved = json.load(f)
        self.assertEqual(saved["rows"], rows)
        self.assertEqual(saved["verdict"], fusion_verdict(rows))
        with open(os.path.join(output, "cross_attention_aux", "config.json")) as f:
            self.assertEqual(json.load(f)["model"]["auxiliary_weight"], 0.5)
        # one decode shared by all variants
        self.assertFalse(os.path.isdir(os.path.join(output, "late", "prepared")))
