import keras
import numpy as np

from common.testing import TestCase
from video_understanding.fusion import TIME_FREQUENCIES, time_bins, time_features
from video_understanding.model import FUSIONS, VideoUnderstandingModel

SMALL = dict(
    num_classes=4,
    num_frames=2,
    frame_size=32,
    sample_rate=8000,
    hidden_dim=16,
    num_heads=2,
    key_dim=8,
    num_layers=1,
    num_mel_bins=16,
    fft_length=256,
    sequence_stride=128,
    audio_filters=(8,),
)


def batch(size=4):
    rng = np.random.default_rng(0)
    return {
        "frames": rng.integers(0, 256, (size, 2, 32, 32, 3), dtype=np.uint8),
        "audio": rng.uniform(-0.5, 0.5, (size, 4000)).astype("float32"),
        "audio_present": np.array([True, True, False, True][:size]),
    }


class VideoUnderstandingModelTest(TestCase):
    def test_every_fusion_and_modality_builds_and_trains_a_step(self):
        labels = np.array([0, 1, 2, 3])
        variants = [dict(fusion=f) for f in FUSIONS] + [
            dict(modalities=("video",)),
            dict(modalities=("audio",)),
            dict(fusion="cross_attention", time_encoding=True),
            dict(fusion="early_temporal", time_encoding=True),
        ]
        for variant in variants:
            model = VideoUnderstandingModel(**SMALL, **variant)
            model.build()
            probabilities = model(batch())
            self.assertEqual(tuple(probabilities.shape), (4, 4), variant)
            np.testing.assert_allclose(probabilities.numpy().sum(1), 1.0, atol=1e-5)
            model.compile(
                optimizer=keras.optimizers.AdamW(1e-4),
                loss="sparse_categorical_crossentropy",
            )
            history = model.fit(batch(), labels, epochs=1, batch_size=4, verbose=0)
            self.assertTrue(np.isfinite(history.history["loss"][0]), variant)

    def test_missing_audio_blanks_audio_tokens(self):
        model = VideoUnderstandingModel(**SMALL, modalities=("audio",))
        model.build()
        inputs = batch()
        silent_but_present = dict(inputs, audio_present=np.array([False] * 4))
        other_audio = dict(silent_but_present, audio=inputs["audio"][::-1].copy())
        # With audio_present False the waveform makes no difference.
        self.assertAllClose(model(silent_but_present), model(other_audio), atol=1e-6)

    def test_frame_differences_feed_motion(self):
        model = VideoUnderstandingModel(**SMALL, modalities=("video",))
        model.build()
        inputs = batch()
        still = dict(inputs, frames=np.repeat(inputs["frames"][:, :1], 2, axis=1))
        moving = dict(inputs, frames=inputs["frames"])
        self.assertFalse(np.allclose(model(still).numpy(), model(moving).numpy()))

    def test_multi_label_and_saving(self):
        model = VideoUnderstandingModel(**SMALL, fusion="graph", multi_label=True)
        model.build()
        out = model(batch()).numpy()
        self.assertTrue(((out > 0) & (out < 1)).all())
        self.run_model_saving_test(model, (batch(),), atol=1e-5)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "fusion.*'concat'"):
            VideoUnderstandingModel(4, fusion="concat")
        with self.assertRaisesRegex(ValueError, "modalities"):
            VideoUnderstandingModel(4, modalities=("text",))
        with self.assertRaisesRegex(ValueError, "3-channel"):
            VideoUnderstandingModel(4, weights="imagenet", frame_differences=True)


class TimeTest(TestCase):
    def test_time_features_against_numpy(self):
        length = 5
        tau = (np.arange(length) + 0.5) / length
        frequencies = 0.5 * 2.0 ** np.arange(TIME_FREQUENCIES)
        angles = 2 * np.pi * tau[:, None] * frequencies[None]
        expected = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
        np.testing.assert_allclose(time_features(length), expected, atol=1e-5)

    def test_time_bins_average_each_stretch(self):
        # 6 audio tokens over 3 frames: tokens (0, 1), (2, 3), (4, 5).
        expected = np.array(
            [[0.5, 0.5, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0, 0], [0, 0, 0, 0, 0.5, 0.5]]
        )
        np.testing.assert_allclose(time_bins(6, 3), expected, atol=1e-6)
        # 2 tokens over 4 frames: empty stretches take the nearest token.
        np.testing.assert_allclose(
            time_bins(2, 4), [[1, 0], [1, 0], [0, 1], [0, 1]], atol=1e-6
        )
        # 7 over 3, by the tokens' centres: floor(3 * (j + .5) / 7) is
        # 0, 0, 1, 1, 1, 2, 2.
        bins = np.asarray(time_bins(7, 3))
        self.assertEqual((bins > 0).sum(axis=1).tolist(), [2, 3, 2])
        np.testing.assert_allclose(bins.sum(axis=1), 1.0, atol=1e-6)

    def test_time_encoding_is_shared_and_saved(self):
        model = VideoUnderstandingModel(**SMALL, time_encoding=True)
        model.build()
        # The same projection for both: tokens of equal length get equal
        # encodings.
        encoding = model.time_projection(time_features(4)).numpy()
        self.assertEqual(encoding.shape, (4, 16))
        self.assertTrue(model.get_config()["time_encoding"])
        self.run_model_saving_test(model, (batch(),), atol=1e-5)
        plain = VideoUnderstandingModel(**SMALL)
        plain.build()
        self.assertFalse(hasattr(plain, "time_projection"))


def cross_entropy(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probabilities[np.arange(len(labels)), labels].mean()


class AuxiliaryHeadsTest(TestCase):
    def make(self, weight):
        model = VideoUnderstandingModel(
            **SMALL, auxiliary_weight=weight, dropout_rate=0.0, modality_dropout=0.0
        )
        model.build()
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-3),
            loss="sparse_categorical_crossentropy",
        )
        return model

    def test_loss_adds_each_modality_head_against_numpy(self):
        labels = np.array([0, 1, 2, 3])
        inputs = batch()
        for weight in (0.0, 0.7):
            model = self.make(weight)
            probabilities = model(inputs, training=True)
            loss = float(
                model.compute_loss(inputs, labels, probabilities, training=True)
            )
            main = -np.log(probabilities.numpy()[np.arange(4), labels]).mean()
            expected = main
            if weight:
                video = model.encode_video(inputs["frames"]).numpy().mean(1)
                audio = model.encode_audio(inputs["audio"], inputs["audio_present"])
                audio = audio.numpy().mean(1)
                for pooled, head in (
                    (video, model.video_auxiliary),
                    (audio, model.audio_auxiliary),
                ):
                    kernel, bias = (w.numpy() for w in head.weights)
                    expected += weight * cross_entropy(pooled @ kernel + bias, labels)
            self.assertAllClose(loss, expected, atol=1e-4)
            # Outside training the heads add nothing.
            self.assertAllClose(
                float(
                    model.compute_loss(inputs, labels, probabilities, training=False)
                ),
                main,
                atol=1e-4,
            )

    def test_heads_train_but_do_not_change_the_outputs(self):
        model = self.make(0.5)
        inputs, labels = batch(), np.array([0, 1, 2, 3])
        before = [w.numpy().copy() for w in model.video_auxiliary.weights]
        model.fit(inputs, labels, epochs=2, batch_size=4, verbose=0)
        after = [w.numpy() for w in model.video_auxiliary.weights]
        self.assertFalse(np.allclose(before[0], after[0]))
        outputs = model(inputs).numpy()
        for head in (model.video_auxiliary, model.audio_auxiliary):
            head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
        self.assertAllClose(model(inputs), outputs, atol=1e-6)
        self.assertEqual(model.get_config()["auxiliary_weight"], 0.5)
        self.run_model_saving_test(model, (inputs,), atol=1e-5)
        # One modality: no heads to add.
        single = VideoUnderstandingModel(
            **SMALL, modalities=("video",), auxiliary_weight=0.5
        )
        self.assertFalse(hasattr(single, "video_auxiliary"))
        with self.assertRaisesRegex(ValueError, "auxiliary_weight.*-1"):
            VideoUnderstandingModel(**SMALL, auxiliary_weight=-1)
