"""The video model: per-frame VGG16 + Conv1D audio, fused across modalities."""

import keras
from keras import ops

from common.encoders import Conv1DAudioEncoder, VGG16ImageEncoder
from common.encoders.hub_encoders import HubAudioEncoder, HubImageEncoder, hub_handle
from common.towers import keras_hub_preset
from common.training.config import arguments_for
from common.training.prebuilt import PrebuiltModel
from video_understanding.config import FUSIONS
from video_understanding.fusion import TIME_FREQUENCIES, FusionMixin

MODALITIES = (("video", "audio"), ("video",), ("audio",))


def _check_arguments(fusion, modalities, weights, frame_differences, towers):
    """Refuses a fusion, a modality set, a tower or a weights choice the
    model lacks."""
    frame_choice = towers["frame_encoder"]
    frame_hub = hub_handle(frame_choice) or keras_hub_preset(frame_choice)
    if frame_hub is None and frame_choice != "vgg16":
        raise ValueError(
            "`frame_encoder` must be 'vgg16', 'hub:<handle or SavedModel "
            "folder>' or 'keras_hub:<preset or preset folder>'; received "
            f"{frame_choice!r}."
        )
    if hub_handle(towers["audio_encoder"]) is None and towers["audio_encoder"] != (
        "conv1d"
    ):
        raise ValueError(
            "`audio_encoder` must be 'conv1d' or 'hub:<handle or SavedModel "
            f"folder>'; received {towers['audio_encoder']!r}."
        )
    if frame_hub is not None and frame_differences:
        raise ValueError(
            "A pretrained frame tower takes 3-channel frames: set "
            "frame_differences=False."
        )
    if fusion not in FUSIONS:
        raise ValueError(f"`fusion` must be one of {FUSIONS}; received {fusion!r}.")
    if modalities not in MODALITIES:
        raise ValueError(
            f"`modalities` must be one of {MODALITIES}; received {modalities!r}."
        )
    if weights == "imagenet" and frame_differences:
        raise ValueError(
            "ImageNet weights take 3-channel frames; set frame_differences=False "
            "or weights=None."
        )


@keras.saving.register_keras_serializable(package="video_understanding")
class VideoUnderstandingModel(FusionMixin, PrebuiltModel):
    """Clip classifier from sampled frames and the audio waveform.

    Frames go through VGG16 one at a time (the frames axis folded into the
    batch, as `TimeDistributed` does), each optionally stacked with its
    difference from the previous frame so that motion is visible to a
    per-frame network; a learned temporal position embedding is added. Audio
    goes through `Conv1DAudioEncoder` (log-mel inside). The token sequences are
    fused by `fusion` and classified.

    Args:
        num_classes: int. Number of classes.
        num_frames: int. Frames per clip.
        frame_size: int. Side of the square frames.
        sample_rate: int. Audio sampling rate.
        fusion: `"cross_attention"` (video attends to audio and audio to
            video with `CrossModalAttention`), `"early"` (pooled, then
            concatenated), `"early_temporal"` (concatenated per time step:
            each frame with the audio of its stretch of the clip, mixed by a
            temporal convolution, then pooled), `"late"`,
            `"self_attention"` or `"graph"`.
        modalities: `("video", "audio")`, `("video",)` or `("audio",)`.
        hidden_dim: token width of both modalities.
        num_heads: attention heads.
        key_dim: size per head.
        num_layers: `SelfAttentionBlock`s / graph layers.
        weights: VGG16 weights (`"imagenet"` needs `frame_differences=False`).
        feature_layer: VGG16 layer whose pooled output is the frame feature.
        frame_differences: stack each frame with its difference (6 channels).
        modality_dropout: probability, per training example, of blanking one
            of two modalities, so a missing modality degrades gracefully.
        dropout_rate: dropout before the classifier.
        multi_label: sigmoid outputs instead of softmax.
        num_mel_bins, fft_length, sequence_stride, audio_filters: audio
            encoder settings.
        time_encoding: add one learned projection of each token's time in
            the clip (sines and cosines of its fraction of the clip) to both
            the frame and the audio tokens, so that attention can match
            moments across modalities.
        frame_encoder: `"vgg16"`, `"hub:<handle or SavedModel folder>"` or
            `"keras_hub:<preset or folder>"`
            (a pretrained image tower applied per frame, its pooled output
            the frame's token; needs `frame_differences=False`).
        audio_encoder: `"conv1d"` or `"hub:<handle or folder>"` (a
            waveform SavedModel, e.g. YAMNet-style; its frames are the
            audio tokens).
        hub_signature: the signature the hub towers are called through.
        frame_encoder_output, audio_encoder_output: their output keys.
        frame_pixel_scale: pixel range the hub frame tower expects
            (`"unit"`, `"symmetric"`, `"raw"`).
        audio_batched: the hub audio tower takes `[B, N]`; `False`: one
            waveform at a time (YAMNet).
        fine_tune_hub: train the hub towers (frozen by default).
        auxiliary_weight: when > 0 and both modalities are used, a
            classifier per modality on its own pooled tokens (before modality
            dropout) whose cross-entropy, times this weight, is added to the
            fused model's loss in training, so that neither tower is left
            untrained when the other one fits faster (a fixed-weight form of
            Gradient Blending, Wang et al., CVPR 2020). The heads do not
            change the outputs.
        **kwargs: base model arguments.

    Call arguments:
        inputs: dict with `frames` uint8 `[B, T, S, S, 3]`, `audio` float32
            `[B, N]` and optionally `audio_present` bool `[B]` (False blanks
            the audio tokens).
        training: bool.

    Returns:
        Class probabilities `[B, num_classes]`.

    Reference:
        Simonyan and Zisserman, ICLR 2015; Hershey et al., ICASSP 2017;
        Nagrani et al., "Attention Bottlenecks for Multimodal Fusion",
        NeurIPS 2021.
    """

    def __init__(
        self,
        num_classes,
        num_frames=8,
        frame_size=112,
        sample_rate=16000,
        fusion="cross_attention",
        modalities=("video", "audio"),
        hidden_dim=128,
        num_heads=4,
        key_dim=32,
        num_layers=2,
        weights=None,
        feature_layer="block5_pool",
        frame_differences=True,
        modality_dropout=0.1,
        dropout_rate=0.1,
        multi_label=False,
        num_mel_bins=64,
        fft_length=512,
        sequence_stride=160,
        audio_filters=(64, 128),
        time_encoding=False,
        auxiliary_weight=0.0,
        frame_encoder="vgg16",
        audio_encoder="conv1d",
        hub_signature="serving_default",
        frame_encoder_output=None,
        frame_pixel_scale="unit",
        audio_encoder_output=None,
        audio_batched=True,
        fine_tune_hub=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        modalities = tuple(modalities)
        self.towers = {
            "frame_encoder": str(frame_encoder),
            "audio_encoder": str(audio_encoder),
            "hub_signature": hub_signature,
            "frame_encoder_output": frame_encoder_output,
            "frame_pixel_scale": frame_pixel_scale,
            "audio_encoder_output": audio_encoder_output,
            "audio_batched": bool(audio_batched),
            "fine_tune_hub": bool(fine_tune_hub),
        }
        _check_arguments(fusion, modalities, weights, frame_differences, self.towers)
        self.num_classes = int(num_classes)
        self.num_frames = int(num_frames)
        self.frame_size = int(frame_size)
        self.sample_rate = int(sample_rate)
        self.fusion = fusion
        self.modalities = modalities
        self.hidden_dim = int(hidden_dim)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.num_layers = int(num_layers)
        self.feature_layer = feature_layer
        self.frame_differences = bool(frame_differences)
        self.modality_dropout = float(modality_dropout)
        self.dropout_rate = float(dropout_rate)
        self.multi_label = bool(multi_label)
        self.num_mel_bins = int(num_mel_bins)
        self.fft_length = int(fft_length)
        self.sequence_stride = int(sequence_stride)
        self.audio_filters = tuple(int(f) for f in audio_filters)
        self.time_encoding = bool(time_encoding)
        if not float(auxiliary_weight) >= 0:
            raise ValueError(
                "`auxiliary_weight` must be >= 0 (0 turns the per-modality heads "
                f"off); received {auxiliary_weight!r}."
            )
        self.auxiliary_weight = float(auxiliary_weight)
        self.use_video = "video" in modalities
        self.use_audio = "audio" in modalities

        self._build_towers(weights)
        both = self.use_video and self.use_audio
        self._build_fusion(both)
        self.use_auxiliary = both and self.auxiliary_weight > 0
        if self.use_auxiliary:
            self.video_auxiliary = keras.layers.Dense(
                self.num_classes, name="video_auxiliary"
            )
            self.audio_auxiliary = keras.layers.Dense(
                self.num_classes, name="audio_auxiliary"
            )
        # Logits of the auxiliary heads from the last training call, read by
        # `compute_loss` in the same step (not tracked by Keras).
        object.__setattr__(self, "_auxiliary_logits", None)
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier")
        self.seed_generator = keras.random.SeedGenerator(1337)

    def _build_towers(self, weights):
        """The frame tower (VGG16, a hub model or a keras-hub vision encoder
        per frame) and the audio tower (Conv1D or a hub model)."""
        channels = 6 if self.frame_differences else 3
        t = self.towers
        frame_hub, audio_hub = (
            hub_handle(t["frame_encoder"]),
            hub_handle(t["audio_encoder"]),
        )
        frame_preset = keras_hub_preset(t["frame_encoder"])
        if self.use_video and frame_preset is not None:
            from common.encoders.keras_hub_encoders import KerasHubImageEncoder

            self.frame_encoder = KerasHubImageEncoder(
                frame_preset,
                (self.frame_size, self.frame_size, 3),
                fine_tune=t["fine_tune_hub"],
                projection_dim=self.hidden_dim,
                name="frame_encoder",
            )
        elif self.use_video and frame_hub is not None:
            self.frame_encoder = HubImageEncoder(
                frame_hub,
                (self.frame_size, self.frame_size, 3),
                signature=t["hub_signature"],
                output_key=t["frame_encoder_output"],
                pixel_scale=t["frame_pixel_scale"],
                fine_tune=t["fine_tune_hub"],
                projection_dim=self.hidden_dim,
                name="frame_encoder",
            )
        elif self.use_video:
            self.frame_encoder = VGG16ImageEncoder(
                (self.frame_size, self.frame_size, channels),
                weights=weights,
                feature_layer=self.feature_layer,
                projection_dim=self.hidden_dim,
                name="frame_encoder",
            )
        if self.use_audio and audio_hub is not None:
            self.audio_encoder = HubAudioEncoder(
                audio_hub,
                signature=t["hub_signature"],
                output_key=t["audio_encoder_output"],
                batched=t["audio_batched"],
                fine_tune=t["fine_tune_hub"],
                projection_dim=self.hidden_dim,
                probe_samples=self.sample_rate,
                name="audio_encoder",
            )
        elif self.use_audio:
            self.audio_encoder = Conv1DAudioEncoder(
                sample_rate=self.sample_rate,
                num_mel_bins=self.num_mel_bins,
                fft_length=self.fft_length,
                sequence_stride=self.sequence_stride,
                filters=self.audio_filters,
                projection_dim=self.hidden_dim,
                name="audio_encoder",
            )

    def build(self, input_shape=None):
        batch = None
        if self.use_video:
            channels = 6 if self.frame_differences else 3
            self.frame_encoder.build(
                (batch, self.frame_size, self.frame_size, channels)
            )
            self.frame_position = self.add_weight(
                name="frame_position",
                shape=(self.num_frames, self.hidden_dim),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
            )
        if self.use_audio:
            self.audio_encoder.build((batch, None))
        if self.time_encoding:
            self.time_projection.build((None, 2 * TIME_FREQUENCIES))
        if self.use_auxiliary:
            self.video_auxiliary.build((None, self.hidden_dim))
            self.audio_auxiliary.build((None, self.hidden_dim))
        if self.use_video and self.use_audio and self.fusion == "self_attention":
            self.modality_type = self.add_weight(
                name="modality_type",
                shape=(2, self.hidden_dim),
                initializer=keras.initializers.RandomNormal(stddev=0.02),
            )
        # The fusion layers and the classifier take their widths from the
        # encoders' outputs: one call on a tiny zero batch builds them all.
        dummy = {
            "frames": ops.zeros(
                (1, self.num_frames, self.frame_size, self.frame_size, 3), "uint8"
            ),
            "audio": ops.zeros((1, self.sample_rate // 2), "float32"),
        }
        self.call(dummy, training=False)
        self.built = True

    def encode_video(self, frames, training=None):
        frames = ops.cast(frames, "float32")
        if self.frame_differences:
            previous = ops.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
            frames = ops.concatenate([frames, frames - previous], axis=-1)
        shape = ops.shape(frames)
        # [B, T, S, S, C] -> [B * T, S, S, C], as TimeDistributed does
        folded = ops.reshape(frames, (-1, shape[2], shape[3], shape[4]))
        pooled = self.frame_encoder(folded, training=training)["pooled_features"]
        tokens = ops.reshape(pooled, (shape[0], self.num_frames, self.hidden_dim))
        return self._add_time(tokens + ops.cast(self.frame_position, tokens.dtype))

    def encode_audio(self, audio, audio_present=None, training=None):
        tokens = self.audio_encoder(audio, training=training)["frame_features"]
        tokens = self._add_time(tokens)
        if audio_present is not None:
            present = ops.cast(audio_present, tokens.dtype)[:, None, None]
            tokens = tokens * present
        return tokens

    def call(self, inputs, training=None):
        video = audio = None
        if self.use_video:
            video = self.encode_video(inputs["frames"], training=training)
        if self.use_audio:
            audio = self.encode_audio(
                inputs["audio"], inputs.get("audio_present"), training=training
            )
        if video is not None and audio is not None:
            if self.use_auxiliary and training:
                self._auxiliary_call(video, audio, training)
            video, audio = self._modality_dropout(video, audio, training)
            logits = self._fuse(video, audio, training)
        else:
            tokens = video if video is not None else audio
            logits = self.classifier(
                self.dropout(ops.mean(tokens, axis=1), training=training)
            )
        activation = ops.sigmoid if self.multi_label else ops.softmax
        return activation(ops.cast(logits, "float32"))

    def _auxiliary_call(self, video, audio, training):
        logits = (
            self.video_auxiliary(self.dropout(ops.mean(video, 1), training=training)),
            self.audio_auxiliary(self.dropout(ops.mean(audio, 1), training=training)),
        )
        object.__setattr__(
            self, "_auxiliary_logits", tuple(ops.cast(x, "float32") for x in logits)
        )

    def auxiliary_loss(self, labels, logits):
        """Mean cross-entropy of each modality's head against `labels`
        (sparse class ids, or multi-hot when `multi_label`), summed."""
        total = 0.0
        for head in logits:
            if self.multi_label:
                loss = keras.losses.binary_crossentropy(
                    ops.cast(labels, "float32"), head, from_logits=True
                )
            else:
                loss = keras.losses.sparse_categorical_crossentropy(
                    labels, head, from_logits=True
                )
            total = total + ops.mean(loss)
        return total

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        logits = self._auxiliary_logits
        object.__setattr__(self, "_auxiliary_logits", None)
        if not (training and self.use_auxiliary and logits is not None):
            return loss
        import tensorflow as tf

        # Keras divides its own losses by the replicas in sync (their
        # gradients are summed); the auxiliary loss is divided the same way.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        auxiliary = self.auxiliary_weight * self.auxiliary_loss(y, logits)
        return loss + auxiliary / replicas

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "num_frames": self.num_frames,
                "frame_size": self.frame_size,
                "sample_rate": self.sample_rate,
                "fusion": self.fusion,
                "modalities": list(self.modalities),
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "num_layers": self.num_layers,
                "weights": None,  # the weights travel with the saved model
                "feature_layer": self.feature_layer,
                "frame_differences": self.frame_differences,
                "modality_dropout": self.modality_dropout,
                "dropout_rate": self.dropout_rate,
                "multi_label": self.multi_label,
                "num_mel_bins": self.num_mel_bins,
                "fft_length": self.fft_length,
                "sequence_stride": self.sequence_stride,
                "audio_filters": list(self.audio_filters),
                "time_encoding": self.time_encoding,
                "auxiliary_weight": self.auxiliary_weight,
                **self.towers,
            }
        )
        return config


def build_model(config, num_classes, multi_label):
    """A built `VideoUnderstandingModel` from a `VideoConfig`."""
    model = VideoUnderstandingModel(
        **arguments_for(
            VideoUnderstandingModel,
            config.model,
            config.data,
            num_classes=num_classes,
            modalities=config.modalities,
            multi_label=multi_label,
        )
    )
    model.build()
    return model


def load_trained_model(run_dir):
    """`(config, model, class_names, multi_label)` with the best weights (float32)."""
    from common.training.config import load_config
    from common.training.run_directory import RunDirectory
    from video_understanding.config import VideoConfig
    from video_understanding.records import read_metadata

    run = RunDirectory(run_dir)
    config = load_config(VideoConfig, run.config)
    keras.config.set_dtype_policy("float32")
    metadata = read_metadata(config.data.path)
    model = build_model(config, len(metadata["class_names"]), metadata["multi_label"])
    model.load_weights(run.trained_weights())
    return config, model, metadata["class_names"], metadata["multi_label"]
