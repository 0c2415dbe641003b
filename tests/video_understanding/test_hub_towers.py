"""SavedModel frame and audio towers (`hub:<folder>`) in the video model:
tiny TF-Hub-style SavedModels written here, trained with, exported and
reloaded with TensorFlow alone."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import tensorflow as tf

from common.encoders.hub_encoders import HubAudioEncoder
from common.testing import TestCase
from tests.video_understanding.test_train import TINY
from video_understanding.__main__ import main

WINDOW = 400  # samples per audio frame of the test towers


class _AudioTower(tf.Module):
    """Waveforms -> per-window features `waveform[window] @ W` (`frames`
    `[B, T, 6]`, or `[T, 6]` and `scores` for one unbatched waveform, as
    YAMNet returns)."""

    def __init__(self, batched):
        super().__init__()
        rng = np.random.default_rng(3)
        self.kernel = tf.Variable(rng.normal(size=(WINDOW, 6)).astype("float32"))
        spec = tf.TensorSpec([None, None] if batched else [None], tf.float32)
        self.serve = tf.function(self._batched if batched else self._one, [spec])

    def _windows(self, waveform):
        count = tf.shape(waveform)[-1] // WINDOW
        return waveform[..., : count * WINDOW], count

    def _batched(self, waveform):
        cut, count = self._windows(waveform)
        frames = tf.reshape(cut, [tf.shape(waveform)[0], count, WINDOW])
        return {"frames": tf.einsum("btw,wd->btd", frames, self.kernel)}

    def _one(self, waveform):
        cut, count = self._windows(waveform)
        embeddings = tf.reshape(cut, [count, WINDOW]) @ self.kernel
        return {"embeddings": embeddings, "scores": embeddings[:, :2]}


def write_audio_tower(path, batched=True):
    tower = _AudioTower(batched)
    tf.saved_model.save(tower, path, signatures={"serving_default": tower.serve})
    return tower.kernel.numpy()


def audio_reference(kernel, audio):
    count = audio.shape[1] // WINDOW
    return audio[:, : count * WINDOW].reshape(len(audio), count, WINDOW) @ kernel


def write_frame_tower(path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(6, 3, strides=4, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    model.export(path, verbose=False)


class HubAudioEncoderTest(TestCase):
    def test_batched_and_one_waveform_at_a_time(self):
        audio = np.random.default_rng(4).normal(size=(3, 2000)).astype("float32")
        for batched, key in ((True, None), (False, "embeddings")):
            path = os.path.join(self.get_temp_dir(), f"audio_{batched}")
            kernel = write_audio_tower(path, batched)
            encoder = HubAudioEncoder(path, output_key=key, batched=batched)
            out = encoder(audio)
            expected = audio_reference(kernel, audio)
            np.testing.assert_allclose(
                out["frame_features"], expected, rtol=1e-4, atol=1e-4
            )
            np.testing.assert_allclose(
                out["pooled_features"], expected.mean(axis=1), rtol=1e-4, atol=1e-4
            )

    def test_one_waveform_tower_needs_its_output_key(self):
        path = os.path.join(self.get_temp_dir(), "yamnet_like")
        write_audio_tower(path, batched=False)
        with self.assertRaisesRegex(ValueError, "embeddings.*scores"):
            HubAudioEncoder(path, batched=False)


def check_export_without_the_project(test, run, model, towers, *unimported):
    """Exports `run`, moves the tower folders `towers` away, and checks that
    a process importing neither the project nor `unimported` gets `model`'s
    probabilities from the SavedModel."""
    tmp = test.get_temp_dir()
    models = os.path.join(tmp, "saved_models")
    test.assertEqual(main(["export", "--run", run, "--output", models]), 0)
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (2, 2, 32, 32, 3)).astype("uint8")
    audio = rng.normal(size=(2, 16000)).astype("float32") * 0.1
    expected = model({"frames": frames, "audio": audio}).numpy()
    np.save(os.path.join(tmp, "frames.npy"), frames)
    np.save(os.path.join(tmp, "audio.npy"), audio)
    for path in towers:
        os.rename(path, path + ".moved")
    forbidden = ("common", "video_understanding", *unimported)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tensorflow as tf
        serve = tf.saved_model.load({os.path.join(models, "1")!r}).signatures[
            "serving_default"]
        folder = {tmp!r}
        out = serve(
            frames=tf.constant(np.load(folder + "/frames.npy")),
            audio=tf.constant(np.load(folder + "/audio.npy")))
        np.save({os.path.join(tmp, "out.npy")!r}, out["probabilities"].numpy())
        mine = [n for n in sys.modules if n.split(".")[0] in {forbidden!r}]
        sys.exit("imported: %s" % mine if mine else 0)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    test.assertEqual(result.returncode, 0, result.stderr[-3000:])
    np.testing.assert_allclose(
        np.load(os.path.join(tmp, "out.npy")), expected, atol=1e-5
    )


class HubTowersInVideoTrainingTest(TestCase):
    def test_train_export_reload_with_tf_alone(self):
        tmp = self.get_temp_dir()
        frames_path, audio_path = (os.path.join(tmp, n) for n in ("frames", "audio"))
        write_frame_tower(frames_path)
        kernel = write_audio_tower(audio_path, batched=False)
        run = os.path.join(tmp, "run")
        args = ["train", "--output", run, "--verbose", "0"]
        for override in [
            *TINY,
            f"model.frame_encoder=hub:{frames_path}",
            f"model.audio_encoder=hub:{audio_path}",
            "model.audio_encoder_output=embeddings",
            "model.audio_batched=false",
            "model.frame_differences=false",
        ]:
            args += ["--set", override]
        self.assertEqual(main(args), 0)

        from video_understanding.model import load_trained_model

        _, model, _, _ = load_trained_model(run)
        # frozen by default: the towers' variables are the files' own
        np.testing.assert_array_equal(
            model.audio_encoder.backbone.weights[0].numpy(), kernel
        )
        check_export_without_the_project(self, run, model, (frames_path, audio_path))

    def test_a_hub_frame_tower_refuses_frame_differences(self):
        path = os.path.join(self.get_temp_dir(), "frames")
        write_frame_tower(path)
        run = os.path.join(self.get_temp_dir(), "run")
        args = ["train", "--output", run, "--set", f"model.frame_encoder=hub:{path}"]
        self.assertEqual(main(args), 2)


def vision_arrays(preset):
    """The preset's vision-encoder arrays."""
    import h5py

    arrays = []
    with h5py.File(os.path.join(preset, "model.weights.h5"), "r") as f:
        f.visititems(
            lambda name, item: (
                arrays.append(np.asarray(item))
                if isinstance(item, h5py.Dataset) and "vision" in name
                else None
            )
        )
    return arrays


class KerasHubFrameTowerTest(TestCase):
    """A keras-hub CLIP vision encoder (small config, random weights, saved
    as a local preset) as the per-frame tower."""

    def train(self, tmp, preset, *overrides):
        """Trains a run with the preset as frame tower; returns the run, its
        model at the last epoch, the number of its vision kernels and how
        many of them equal one of the preset's arrays."""
        run = os.path.join(tmp, "run")
        args = ["train", "--output", run, "--verbose", "0"]
        for override in [
            *TINY,
            f"model.frame_encoder=keras_hub:{preset}",
            "model.frame_differences=false",
            *overrides,
        ]:
            args += ["--set", override]
        self.assertEqual(main(args), 0)

        from video_understanding.model import load_trained_model

        _, model, _, _ = load_trained_model(run)
        # the last epoch's weights (the best may be an earlier epoch's)
        model.load_weights(os.path.join(run, "checkpoints", "last.weights.h5"))
        saved = vision_arrays(preset)
        kernels = [
            v.numpy()
            for v in model.frame_encoder.backbone.weights
            if len(v.shape) == 2 and int(np.prod(v.shape)) > 16 and "float" in v.dtype
        ]
        self.assertGreaterEqual(len(kernels), 3)
        unchanged = sum(
            any(a.shape == k.shape and np.array_equal(a, k) for a in saved)
            for k in kernels
        )
        return run, model, len(kernels), unchanged

    def test_fine_tuned_clip_frames_train_export_reload_with_tf_alone(self):
        from tests.retrieval.test_keras_hub_towers import clip_preset

        tmp = self.get_temp_dir()
        preset = os.path.join(tmp, "clip")
        clip_preset(preset)
        run, model, _, unchanged = self.train(
            tmp,
            preset,
            "model.fine_tune_hub=true",
            "training.hub_learning_rate_multiplier=1.0",
        )
        self.assertEqual(type(model.frame_encoder).__name__, "KerasHubImageEncoder")
        self.assertEqual(model.frame_encoder.grid_shape, (4, 4))  # 32 px / 8 px
        self.assertEqual(unchanged, 0, "fine-tuned kernels equal to the preset's")

        from video_understanding.model import load_trained_model

        _, model, _, _ = load_trained_model(run)  # the weights export takes
        check_export_without_the_project(self, run, model, (preset,), "keras_hub")

    def test_frozen_then_fine_tuned_after_freeze_tower_epochs(self):
        from tests.retrieval.test_keras_hub_towers import clip_preset

        preset = os.path.join(self.get_temp_dir(), "clip")
        clip_preset(preset)
        tuned = ("model.fine_tune_hub=true", "training.hub_learning_rate_multiplier=1")
        for epochs, frozen_epochs, moved in ((2, 2, False), (2, 1, True)):
            tmp = os.path.join(self.get_temp_dir(), f"{epochs}-{frozen_epochs}")
            os.makedirs(tmp)
            _, _, count, unchanged = self.train(
                tmp,
                preset,
                *tuned,
                f"training.epochs={epochs}",
                f"training.freeze_tower_epochs={frozen_epochs}",
            )
            self.assertEqual(unchanged, 0 if moved else count, (epochs, frozen_epochs))
        run = os.path.join(self.get_temp_dir(), "refused")
        args = ["train", "--output", run, "--set", "training.freeze_tower_epochs=1"]
        self.assertEqual(main(args), 2)  # no pretrained tower to freeze

    def test_a_keras_hub_frame_tower_refuses_frame_differences(self):
        run = os.path.join(self.get_temp_dir(), "run")
        args = ["train", "--output", run, "--set", "model.frame_encoder=keras_hub:x"]
        self.assertEqual(main(args), 2)
