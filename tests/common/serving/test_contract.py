"""The serving contract of the exported SavedModels, with TF's and TF Serving's
own tools: `saved_model_cli`, `tensorflow_hub.load` in a process that imports
nothing of this project, the warmup file replayed through the signatures, and
an export that crashes midway leaving no version behind."""

import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from common.serving.settings import ALLOWED_BATCH_SIZES, WARMUP_FILE
from common.serving.warmup import read_warmup_requests
from common.testing import TestCase
from tests.exported_models import exported

CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def run_tool(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    return result


class ServingContractTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        e = exported()
        cls.retrieval_run, cls.retrieval = e.retrieval_run, e.retrieval
        cls.images, cls.index = e.images, e.index
        cls.video_run, cls.video = e.video_run, e.video

    def video_inputs(self, batch=2):
        from video_understanding.model import load_trained_model

        config, model, _, _ = load_trained_model(self.video_run)
        rng = np.random.default_rng(0)
        shape = (batch, model.num_frames, model.frame_size, model.frame_size, 3)
        frames = rng.integers(0, 255, shape, dtype=np.uint8)
        audio = rng.uniform(-0.5, 0.5, (batch, 8000)).astype(np.float32)
        expected = model({"frames": frames, "audio": audio}, training=False)
        return frames, audio, np.asarray(expected)

    def test_saved_model_cli_show_lists_the_documented_signatures(self):
        cases = {
            self.retrieval: {
                "embed_image": ["image_bytes", "DT_STRING", "shape: (-1)"],
                "embed_image_pixels": ["images", "DT_UINT8", "shape: (-1, -1, -1, 3)"],
                "embed_text": ["text", "DT_STRING"],
                "score": ["image_bytes", "text", "scores"],
                "image_regions": ["image_bytes", "embeddings", "regions"],
                "text_tokens": ["text", "tokens", "mask"],
                "match_regions": ["regions", "tokens", "mask", "DT_BOOL", "match"],
                "serving_default": ["text", "embeddings"],
            },
            self.index: {
                "search_by_text": ["text", "k", "DT_INT32", "ids", "scores"],
                "search_by_text_reranked": ["text", "k", "rerank_depth", "ids"],
                "search_by_image": ["image_bytes", "k"],
                "serving_default": ["text", "k"],
            },
            self.video: {
                "serving_default": [
                    "frames", "DT_UINT8", "audio", "DT_FLOAT", "probabilities",
                    "top_classes", "top_scores",
                ],
            },
        }  # fmt: skip
        for base, signatures in cases.items():
            result = run_tool(CLI, "show", "--dir", os.path.join(base, "1"), "--all")
            self.assertEqual(result.returncode, 0, result.stderr[-2000:])
            for name, needles in signatures.items():
                start = result.stdout.index(f"signature_def['{name}']:")
                block = result.stdout[start:].split("signature_def[", 2)[1]
                for needle in needles:
                    self.assertIn(needle, block, f"{base} {name}")

    def test_saved_model_cli_run_with_npy_inputs(self):
        tmp = self.get_temp_dir()
        frames, audio, expected = self.video_inputs()
        np.save(os.path.join(tmp, "frames.npy"), frames)
        np.save(os.path.join(tmp, "audio.npy"), audio)
        out = os.path.join(tmp, "out")
        result = run_tool(
            CLI, "run", "--dir", os.path.join(self.video, "1"), "--tag_set", "serve",
            "--signature_def", "serving_default",
            "--inputs", f"frames={tmp}/frames.npy;audio={tmp}/audio.npy",
            "--outdir", out,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        np.testing.assert_allclose(
            np.load(os.path.join(out, "probabilities.npy")), expected, atol=1e-5
        )
        pixels = np.full((2, 40, 30, 3), 100, np.uint8)
        np.save(os.path.join(tmp, "images.npy"), pixels)
        result = run_tool(
            CLI, "run", "--dir", os.path.join(self.retrieval, "1"),
            "--tag_set", "serve",
            "--signature_def", "embed_image_pixels",
            "--inputs", f"images={tmp}/images.npy", "--outdir", out,
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        embeddings = np.load(os.path.join(out, "embeddings.npy"))
        self.assertEqual(embeddings.shape[0], 2)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)

    def test_tensorflow_hub_load_matches_keras(self):
        from retrieval.model import load_trained_model

        _, model = load_trained_model(self.retrieval_run)
        texts = ["a small red circle", "a big blue square at the top left", ""]
        expected_text = model.encode_texts(tf.constant(texts))["embeddings"].numpy()
        frames, audio, expected_video = self.video_inputs()
        tmp = self.get_temp_dir()
        np.savez(os.path.join(tmp, "in.npz"), frames=frames, audio=audio)
        script = textwrap.dedent(f"""
            import sys
            import numpy as np
            import tensorflow as tf
            import tensorflow_hub as hub
            inputs = np.load({os.path.join(tmp, "in.npz")!r})
            retrieval = hub.load({os.path.join(self.retrieval, "1")!r})
            text = retrieval.signatures["embed_text"](text=tf.constant({texts!r}))
            video = hub.load({os.path.join(self.video, "1")!r})
            probs = video.signatures["serving_default"](
                frames=tf.constant(inputs["frames"]), audio=tf.constant(inputs["audio"])
            )
            np.savez({os.path.join(tmp, "out.npz")!r},
                     text=text["embeddings"].numpy(),
                     video=probs["probabilities"].numpy())
            mine = [n for n in sys.modules if n.split(".")[0] in
                    ("common", "retrieval", "video_understanding")]
            sys.exit("imported project modules: %s" % mine if mine else 0)
        """)
        result = run_tool(sys.executable, "-c", script)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        out = np.load(os.path.join(tmp, "out.npz"))
        np.testing.assert_allclose(out["text"], expected_text, atol=1e-5)
        np.testing.assert_allclose(out["video"], expected_video, atol=1e-5)

    def test_warmup_requests_cover_every_signature_and_replay(self):
        expected = {
            self.retrieval: (
                "retrieval",
                {"embed_image", "embed_image_pixels", "embed_text", "score",
                 "image_regions", "text_tokens", "match_regions",
                 "serving_default"},
            ),
            self.index: (
                "retrieval_index",
                {"search_by_text", "search_by_text_reranked", "search_by_image",
                 "serving_default"},
            ),
            self.video: ("video_understanding", {"serving_default"}),
        }  # fmt: skip
        for base, (model_name, signatures) in expected.items():
            version = os.path.join(base, "1")
            path = os.path.join(version, "assets.extra", WARMUP_FILE)
            logs = [
                prediction_log_pb2.PredictionLog.FromString(r.numpy())
                for r in tf.data.TFRecordDataset(path)
            ]
            self.assertTrue(all(log.HasField("predict_log") for log in logs))
            self.assertEqual(
                {log.predict_log.request.model_spec.name for log in logs}, {model_name}
            )
            loaded = tf.saved_model.load(version)
            self.assertEqual(set(loaded.signatures), signatures)
            covered = {}
            for signature, inputs in read_warmup_requests(version):
                batch = {len(v) for v in inputs.values()}
                self.assertEqual(len(batch), 1, f"{signature}: ragged batch")
                batch = batch.pop()
                covered.setdefault(signature, set()).add(batch)
                outputs = loaded.signatures[signature](
                    **{k: tf.constant(v) for k, v in inputs.items()}
                )
                for name, value in outputs.items():
                    self.assertEqual(value.shape[0], batch, f"{signature} {name}")
            self.assertEqual(
                covered, {s: set(ALLOWED_BATCH_SIZES) for s in signatures}, base
            )

    def test_a_crash_mid_export_leaves_no_version(self):
        import retrieval.export

        before = sorted(os.listdir(self.retrieval))

        def fail(export_dir, *args, **kwargs):
            # variables and saved_model.pb are written by now
            self.assertTrue(os.path.isdir(os.path.join(export_dir, "variables")))
            raise OSError(28, "No space left on device")

        with mock.patch.object(retrieval.export, "write_warmup_requests", fail):
            with self.assertRaisesRegex(OSError, "No space left"):
                retrieval.export.export(
                    self.retrieval_run, self.retrieval, verbose=False
                )
        self.assertEqual(sorted(os.listdir(self.retrieval)), before)
        loaded = tf.saved_model.load(os.path.join(self.retrieval, "1"))
        out = loaded.signatures["embed_text"](text=tf.constant(["still serving"]))
        self.assertEqual(out["embeddings"].shape[0], 1)
