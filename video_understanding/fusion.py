"""The fusion step of the video model: the layers that join frame and
audio tokens into one clip representation, by the model's `fusion`, and the
time features that line the two sequences up."""

import keras
import numpy as np
from keras import ops

from common.layers import (
    CrossModalAttention,
    EarlyFusion,
    LateFusion,
    ModalityGraphFusion,
    SelfAttentionBlock,
)

TIME_FREQUENCIES = 6  # 0.5 to 16 cycles per clip


def time_features(length):
    """`[length, 2 * TIME_FREQUENCIES]` sines and cosines of each token's
    time, the centre of its stretch as a fraction of the clip."""
    tau = (ops.cast(ops.arange(length), "float32") + 0.5) / ops.cast(length, "float32")
    frequencies = 0.5 * 2.0 ** ops.cast(ops.arange(TIME_FREQUENCIES), "float32")
    angles = 2.0 * np.pi * tau[:, None] * frequencies[None, :]
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def time_bins(length, steps):
    """`[steps, length]`: row s averages the tokens whose time falls in the
    s-th of `steps` equal stretches of the clip (each token in one row; a
    stretch with no token, when `length < steps`, takes its nearest)."""
    tau = (ops.cast(ops.arange(length), "float32") + 0.5) / ops.cast(length, "float32")
    owner = ops.cast(ops.floor(tau * steps), "int32")
    centres = (ops.cast(ops.arange(steps), "float32") + 0.5) / steps
    nearest = ops.argmin(ops.abs(centres[:, None] - tau[None, :]), axis=1)
    weights = ops.transpose(ops.one_hot(owner, steps))  # [steps, length]
    empty = ops.sum(weights, axis=1, keepdims=True) == 0
    weights = ops.where(empty, ops.one_hot(nearest, length), weights)
    return weights / ops.sum(weights, axis=1, keepdims=True)


class FusionMixin:
    """`VideoUnderstandingModel`'s fusion: `_build_fusion` creates the layers
    of its `fusion` (as attributes of the model, so their weights are the
    model's), `_fuse` turns frame and audio tokens into logits."""

    def _build_fusion(self, both):
        fusion = self.fusion
        if self.time_encoding:
            # One projection for both modalities: the same moment gets the
            # same vector in frame and audio tokens.
            self.time_projection = keras.layers.Dense(
                self.hidden_dim, name="time_projection"
            )
        if both and fusion == "early_temporal":
            self.temporal_mixer = keras.layers.Conv1D(
                self.hidden_dim, 3, padding="same", activation="relu",
                name="temporal_mixer",
            )  # fmt: skip
        if both and fusion == "cross_attention":
            self.video_to_audio = CrossModalAttention(
                self.num_heads, self.key_dim, name="video_to_audio"
            )
            self.audio_to_video = CrossModalAttention(
                self.num_heads, self.key_dim, name="audio_to_video"
            )
        elif both and fusion == "early":
            self.early = EarlyFusion(self.hidden_dim, activation="relu", name="early")
        elif both and fusion == "late":
            self.video_head = keras.layers.Dense(self.num_classes, name="video_head")
            self.audio_head = keras.layers.Dense(self.num_classes, name="audio_head")
            self.late = LateFusion("weighted", name="late")
        elif both and fusion == "self_attention":
            self.blocks = [
                SelfAttentionBlock(
                    self.num_heads,
                    self.key_dim,
                    2 * self.hidden_dim,
                    name=f"self_attention_{i}",
                )
                for i in range(self.num_layers)
            ]
        elif both and fusion == "graph":
            self.graph = ModalityGraphFusion(
                self.hidden_dim,
                num_layers=self.num_layers,
                graph_layer="gat",
                num_heads=self.num_heads,
                name="graph",
            )

    def _add_time(self, tokens):
        if not self.time_encoding:
            return tokens
        encoding = self.time_projection(time_features(ops.shape(tokens)[1]))
        return tokens + ops.cast(encoding, tokens.dtype)[None]

    def _modality_dropout(self, video, audio, training):
        if not training or self.modality_dropout <= 0:
            return video, audio
        batch = ops.shape(video)[0]
        draw = keras.random.uniform((batch,), seed=self.seed_generator)
        # Blank video for draw < p/2, audio for p/2 <= draw < p.
        keep_video = ops.cast(draw >= self.modality_dropout / 2, video.dtype)
        keep_audio = ops.cast(
            ops.logical_or(
                draw < self.modality_dropout / 2, draw >= self.modality_dropout
            ),
            audio.dtype,
        )
        return video * keep_video[:, None, None], audio * keep_audio[:, None, None]

    def _fuse(self, video, audio, training):
        if self.fusion == "late":
            video_logits = self.video_head(
                self.dropout(ops.mean(video, 1), training=training)
            )
            audio_logits = self.audio_head(
                self.dropout(ops.mean(audio, 1), training=training)
            )
            return self.late([video_logits, audio_logits])
        if self.fusion == "cross_attention":
            video_ctx = self.video_to_audio(video, audio, training=training)
            audio_ctx = self.audio_to_video(audio, video, training=training)
            fused = ops.concatenate(
                [ops.mean(video_ctx, 1), ops.mean(audio_ctx, 1)], -1
            )
        elif self.fusion == "early":
            fused = self.early([ops.mean(video, 1), ops.mean(audio, 1)])
        elif self.fusion == "early_temporal":
            # Per time step: each frame with the audio tokens of its stretch
            # of the clip, mixed over neighbouring steps, then pooled.
            steps = ops.matmul(
                ops.cast(time_bins(ops.shape(audio)[1], self.num_frames), audio.dtype),
                audio,
            )
            fused = ops.mean(
                self.temporal_mixer(ops.concatenate([video, steps], axis=-1)), 1
            )
        elif self.fusion == "self_attention":
            types = ops.cast(self.modality_type, video.dtype)
            tokens = ops.concatenate([video + types[0], audio + types[1]], axis=1)
            for block in self.blocks:
                tokens = block(tokens, training=training)
            fused = ops.mean(tokens, axis=1)
        else:
            fused = self.graph([video, audio], training=training)
        return self.classifier(self.dropout(fused, training=training))
