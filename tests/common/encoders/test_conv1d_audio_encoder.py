import numpy as np

from common.encoders import Conv1DAudioEncoder
from common.testing import TestCase

SMALL = dict(
    sample_rate=8000,
    num_mel_bins=16,
    fft_length=256,
    sequence_stride=128,
    filters=(8, 16),
)


def hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f) / 700.0)


class Conv1DAudioEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        t = np.arange(4000) / 8000.0
        self.audio = np.stack(
            [0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 2000 * t)]
        ).astype("float32")

    def test_layer_contract(self):
        encoder = self.run_layer_test(
            Conv1DAudioEncoder,
            dict(SMALL, projection_dim=4),
            (self.audio,),
            expected_output_shape={
                "frame_features": (2, 8, 4),
                "pooled_features": (2, 4),
            },
        )
        self.assertEqual(encoder.num_frames(4000), 8)

    def test_spectrogram_of_a_tone_peaks_in_its_mel_band(self):
        encoder = Conv1DAudioEncoder(**SMALL)
        mel = encoder.spectrogram(self.audio).numpy()  # [B, mels, T]
        # Band centres equally spaced in mel between 0 Hz and Nyquist (HTK).
        edges = np.linspace(hz_to_mel(0.0), hz_to_mel(4000.0), 16 + 2)
        centres = edges[1:-1]
        for row, frequency in enumerate((440.0, 2000.0)):
            expected_band = int(np.argmin(np.abs(centres - hz_to_mel(frequency))))
            peak = int(np.argmax(mel[row].mean(axis=1)))
            self.assertLessEqual(abs(peak - expected_band), 1)

    def test_silence_is_finite(self):
        out = Conv1DAudioEncoder(**SMALL)(np.zeros((2, 4000), "float32"))
        self.assertAllFinite(out)

    def test_sound_shorter_than_a_window_is_padded_with_silence(self):
        encoder = Conv1DAudioEncoder(filters=[8], num_mel_bins=16, fft_length=512)
        tone = np.sin(np.arange(100) * 0.3).astype("float32")[None]
        padded = np.concatenate([tone, np.zeros((1, 412), "float32")], axis=1)
        for short in (tone, tone[:, :1]):
            out = encoder(short)["frame_features"]
            self.assertEqual(
                tuple(out.shape),
                encoder.compute_output_shape(short.shape)["frame_features"],
            )
            self.assertTrue(np.isfinite(out).all())
        # 100 samples give exactly what the same samples padded to 512 give
        np.testing.assert_allclose(
            encoder(tone)["frame_features"],
            encoder(padded)["frame_features"],
            atol=1e-5,
        )

    def test_saving_and_export(self):
        encoder = Conv1DAudioEncoder(**SMALL)
        self.run_model_saving_test(encoder, (self.audio,), atol=1e-5)
        self.run_export_test(encoder, {"audio": self.audio}, atol=1e-4)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "filters.*\\(\\)"):
            Conv1DAudioEncoder(filters=())
        with self.assertRaisesRegex(ValueError, "sample_rate.*-1"):
            Conv1DAudioEncoder(sample_rate=-1)
        with self.assertRaisesRegex(ValueError, r"\[B, samples\].*\(2, 4000, 1\)"):
            Conv1DAudioEncoder(**SMALL)(self.audio[..., None])
