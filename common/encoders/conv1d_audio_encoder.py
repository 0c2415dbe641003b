"""Conv1D audio encoder over a log-mel spectrogram computed in the model."""

import keras
from keras import ops

from common.encoders.projection import projection_layer
from common.layers.validation import (
    check_optional_positive_int,
    check_positive_int,
    check_rate,
)


@keras.saving.register_keras_serializable(package="common")
class Conv1DAudioEncoder(keras.layers.Layer):
    """Raw waveform -> log-mel spectrogram -> Conv1D stack -> audio tokens.

    `keras.layers.MelSpectrogram` runs inside (in float32), so an exported
    model takes mono float waveforms in [-1, 1]. Each spectrogram frame is
    LayerNorm-ed over its mel bins, then each entry of `filters` adds a
    `Conv1D(kernel_size, relu)` and a `MaxPool1D(pool_size)` over time.

    Args:
        sample_rate: int. Sampling rate of the waveforms, in Hz.
        num_mel_bins: int. Mel bands of the spectrogram.
        fft_length: int. FFT size (window) in samples.
        sequence_stride: int. Hop between frames in samples.
        filters: tuple of int. Conv1D widths, one conv block each.
        kernel_size: int. Conv1D kernel size.
        pool_size: int. Max-pool size after each conv block.
        projection_dim: int or None. Project the tokens to this size.
        dropout_rate: float. Dropout after each conv block in training.
        **kwargs: base layer arguments.

    Call arguments:
        audio: float tensor `[B, S]`, mono samples at `sample_rate`.
        training: bool.

    Returns:
        A dict: `frame_features` `[B, Ta, D]` and `pooled_features` `[B, D]`.

    Example:

    >>> import numpy as np
    >>> encoder = Conv1DAudioEncoder(sample_rate=8000, num_mel_bins=16,
    ...                              fft_length=256, sequence_stride=128,
    ...                              filters=(8, 16))
    >>> out = encoder(np.zeros((2, 4000), "float32"))
    >>> tuple(out["frame_features"].shape)
    (2, 8, 16)

    Reference:
        Hershey et al., "CNN Architectures for Large-Scale Audio
        Classification", ICASSP 2017.
    """

    def __init__(
        self,
        sample_rate=16000,
        num_mel_bins=64,
        fft_length=512,
        sequence_stride=160,
        filters=(64, 128, 128),
        kernel_size=3,
        pool_size=2,
        projection_dim=None,
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.sample_rate = check_positive_int("sample_rate", sample_rate)
        self.num_mel_bins = check_positive_int("num_mel_bins", num_mel_bins)
        self.fft_length = check_positive_int("fft_length", fft_length)
        self.sequence_stride = check_positive_int("sequence_stride", sequence_stride)
        if not filters:
            raise ValueError(
                f"`filters` must list at least one width; received {filters!r}."
            )
        self.filters = tuple(check_positive_int("filters", f) for f in filters)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.pool_size = check_positive_int("pool_size", pool_size)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        policy = self.dtype_policy
        self.spectrogram = keras.layers.MelSpectrogram(
            fft_length=self.fft_length,
            sequence_stride=self.sequence_stride,
            sampling_rate=self.sample_rate,
            num_mel_bins=self.num_mel_bins,
            power_to_db=True,
            dtype="float32",
            name="mel_spectrogram",
        )
        self.frame_norm = keras.layers.LayerNormalization(
            dtype=policy, name="frame_norm"
        )
        self.conv_blocks = []
        for index, width in enumerate(self.filters):
            conv = keras.layers.Conv1D(
                width,
                self.kernel_size,
                padding="same",
                activation="relu",
                dtype=policy,
                name=f"conv_{index}",
            )
            pool = keras.layers.MaxPooling1D(
                self.pool_size, padding="same", dtype=policy, name=f"pool_{index}"
            )
            dropout = keras.layers.Dropout(
                self.dropout_rate, dtype=policy, name=f"dropout_{index}"
            )
            self.conv_blocks.append((conv, pool, dropout))
        self.projection = projection_layer(self.projection_dim, policy)

    @property
    def feature_dim(self):
        return self.projection_dim or self.filters[-1]

    def num_frames(self, num_samples):
        """Audio tokens produced for `num_samples` samples."""
        num_samples = max(num_samples, self.fft_length)  # padded in call()
        frames = num_samples // self.sequence_stride + 1
        for _ in self.filters:
            frames = -(-frames // self.pool_size)
        return frames

    def build(self, audio_shape):
        if len(audio_shape) != 2:
            raise ValueError(
                f"Audio must be [B, samples]; received shape {tuple(audio_shape)}."
            )
        self.frame_norm.build((None, None, self.num_mel_bins))
        width = self.num_mel_bins
        for conv, _, _ in self.conv_blocks:
            conv.build((None, None, width))
            width = conv.filters
        if self.projection is not None:
            self.projection.build((None, None, width))

    def call(self, audio, training=None):
        if audio.shape is not None and len(audio.shape) != 2:
            raise ValueError(
                f"Audio must be [B, samples]; received shape {tuple(audio.shape)}."
            )
        audio = ops.cast(audio, "float32")
        # Sound shorter than one FFT window (a clip of a few milliseconds) is
        # padded with silence: the spectrogram's reflect padding needs more
        # than half a window of samples.
        short = ops.maximum(self.fft_length - ops.shape(audio)[1], 0)
        audio = ops.pad(audio, [[0, 0], [0, short]])
        # [B, mels, T] -> [B, T, mels]
        mel = self.spectrogram(audio)
        x = self.frame_norm(ops.transpose(mel, (0, 2, 1)))
        for conv, pool, dropout in self.conv_blocks:
            x = dropout(pool(conv(x)), training=training)
        if self.projection is not None:
            x = self.projection(x)
        return {"frame_features": x, "pooled_features": ops.mean(x, axis=1)}

    def compute_output_shape(self, audio_shape):
        batch, samples = audio_shape
        frames = None if samples is None else self.num_frames(samples)
        return {
            "frame_features": (batch, frames, self.feature_dim),
            "pooled_features": (batch, self.feature_dim),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sample_rate": self.sample_rate,
                "num_mel_bins": self.num_mel_bins,
                "fft_length": self.fft_length,
                "sequence_stride": self.sequence_stride,
                "filters": list(self.filters),
                "kernel_size": self.kernel_size,
                "pool_size": self.pool_size,
                "projection_dim": self.projection_dim,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config
