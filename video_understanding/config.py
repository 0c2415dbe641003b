"""Configuration of the video application: dataclasses and presets."""

import dataclasses

from common.towers import PIXEL_SCALES, pretrained_choice
from common.training import config as common_config
from common.training.config import (
    check_positive_integers,
    config_from_presets,
)

FUSIONS = (
    "cross_attention",
    "early",
    "early_temporal",
    "late",
    "self_attention",
    "graph",
)
DEMO_TASKS = ("shapes", "sync")


def check_clip_seconds(clip_seconds):
    """Raises `ValueError` unless `clip_seconds` is a positive number."""
    if (
        isinstance(clip_seconds, bool)
        or not isinstance(clip_seconds, int | float)
        or not clip_seconds > 0
    ):
        raise ValueError(
            "clip_seconds must be a positive number of seconds (every clip is "
            "cropped to it, or padded with silence, so that clips of any length "
            f"batch together); received {clip_seconds!r}."
        )


@dataclasses.dataclass
class DataConfig(common_config.DataConfig):
    """How clips are read and decoded: the settings of
    `common.training.config.DataConfig` (`path`: clips in class folders, a
    CSV manifest or UCF101's layout, or a prepared folder) and

    Attributes:
        num_frames: frames sampled per clip.
        frame_size: side of the square frames.
        sample_rate: audio rate in Hz.
        clip_seconds: decoded window in seconds: longer clips are cropped to
            it (centred), shorter ones padded with silence, so every clip has
            `num_frames` frames and `clip_seconds * sample_rate` samples.
        shard_size: clips per prepared shard.
        demo_clips_per_class: demo clips per class for train, val, test.
        demo_task: the generated clips: `"shapes"` (direction x pitch) or
            `"sync"` (which of two bouncing shapes makes the clicks).
    """

    num_frames: int = 8
    frame_size: int = 112
    sample_rate: int = 16000
    clip_seconds: float = 10.0
    shard_size: int = 64
    demo_clips_per_class: tuple = (60, 10, 20)
    demo_task: str = "shapes"


@dataclasses.dataclass
class ModelConfig:
    """The model's shape (see `VideoUnderstandingModel`).

    Attributes:
        fusion: one of `FUSIONS`.
        modalities: `"video,audio"`, `"video"` or `"audio"`.
        hidden_dim: token width.
        num_heads: attention heads.
        key_dim: size per head.
        num_layers: self-attention blocks / graph layers.
        weights: VGG16 weights (`None`, `"imagenet"` or a file).
        feature_layer: VGG16 layer pooled per frame.
        frame_differences: stack frames with their differences.
        modality_dropout: probability of blanking a modality in training.
        dropout_rate: dropout before the classifier.
        num_mel_bins: mel bands.
        fft_length: FFT size.
        sequence_stride: hop in samples.
        audio_filters: Conv1D widths.
        time_encoding: add the same encoding of each token's time in the
            clip (a fraction of its length) to frame and audio tokens, so
            attention can line the two sequences up in time.
        auxiliary_weight: with both modalities, > 0 adds a classifier per
            modality whose loss, times this weight, joins the fused loss in
            training (a guard against one tower fitting and the other
            starving); 0 turns them off.
        frame_encoder: `vgg16`, `hub:<TF-Hub/Kaggle handle or local
            SavedModel folder>` or `keras_hub:<preset or local preset
            folder>` (a CLIP/SigLIP vision encoder with its image
            converter): a pretrained image tower per frame (needs
            `frame_differences=false`; `keras_hub:` needs `.[keras_hub]`).
        audio_encoder: `conv1d`, or `hub:<handle or folder>`: a waveform
            SavedModel (YAMNet-style) whose frames are the audio tokens.
        hub_signature: signature the hub towers are called through.
        frame_encoder_output: output key of the hub frame tower.
        frame_pixel_scale: pixel range the hub frame tower expects: `unit`
            ([0, 1]), `symmetric` ([-1, 1]) or `raw` (0-255).
        audio_encoder_output: output key of the hub audio tower.
        audio_batched: the hub audio tower takes `[B, N]`; false: one
            waveform `[N]` at a time (YAMNet).
        fine_tune_hub: train the hub towers (frozen by default), at
            `training.hub_learning_rate_multiplier` x the base rate.
    """

    fusion: str = "cross_attention"
    modalities: str = "video,audio"
    hidden_dim: int = 256
    num_heads: int = 4
    key_dim: int = 64
    num_layers: int = 2
    weights: str | None = None
    feature_layer: str = "block5_pool"
    frame_differences: bool = True
    modality_dropout: float = 0.1
    dropout_rate: float = 0.1
    num_mel_bins: int = 64
    fft_length: int = 512
    sequence_stride: int = 160
    audio_filters: tuple = (64, 128)
    time_encoding: bool = False
    auxiliary_weight: float = 0.0
    frame_encoder: str = "vgg16"
    audio_encoder: str = "conv1d"
    hub_signature: str = "serving_default"
    frame_encoder_output: str | None = None
    frame_pixel_scale: str = "unit"
    audio_encoder_output: str | None = None
    audio_batched: bool = True
    fine_tune_hub: bool = False


@dataclasses.dataclass
class TrainingConfig(common_config.TrainingConfig):
    """How the model is trained: the settings of
    `common.training.config.TrainingConfig` and

    Attributes:
        video_learning_rate_multiplier: the frame tower's rate as a multiple
            of `learning_rate`.
        audio_learning_rate_multiplier: the Conv1D audio tower's rate as a
            multiple of `learning_rate` (a small log-mel tower learns at
            ~3e-3, which would stall VGG16; `bench/spoken_digits.py`).
        hub_learning_rate_multiplier: the fine-tuned hub towers' own
            variables' rate as a multiple of `learning_rate` (in place of
            their tower's multiplier).
        freeze_tower_epochs: with `model.fine_tune_hub=true`, the epochs
            the pretrained towers stay frozen (the rest of the model learns
            on their features) before they are fine-tuned with it.
    """

    video_learning_rate_multiplier: float = 1.0
    audio_learning_rate_multiplier: float = 30.0
    hub_learning_rate_multiplier: float = 0.1
    freeze_tower_epochs: int = 0


@dataclasses.dataclass
class VideoConfig:
    """A video run's configuration, saved as `config.json` in its folder: the
    `preset` it started from, the clips and their decoding (`data`), the
    towers and their fusion (`model`) and the `training` settings
    (`DataConfig`, `ModelConfig`, `TrainingConfig`); `modalities` is the
    tuple of `model.modalities`."""

    preset: str = "ucf101"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    @property
    def modalities(self):
        return tuple(m.strip() for m in self.model.modalities.split(",") if m.strip())

    def validate(self):
        if self.data.demo_task not in DEMO_TASKS:
            raise ValueError(
                f"data.demo_task must be one of {DEMO_TASKS}; received "
                f"{self.data.demo_task!r}."
            )
        if self.model.fusion not in FUSIONS:
            raise ValueError(
                f"model.fusion must be one of {FUSIONS}; received "
                f"{self.model.fusion!r}."
            )
        if self.modalities not in (("video", "audio"), ("video",), ("audio",)):
            raise ValueError(
                "model.modalities must be 'video,audio', 'video' or 'audio'; received "
                f"{self.model.modalities!r}."
            )
        self.training.validate()
        m = self.model
        if pretrained_choice(m.frame_encoder) and m.frame_differences:
            raise ValueError(
                f"model.frame_encoder={m.frame_encoder} takes 3-channel frames: "
                "set model.frame_differences=false."
            )
        if m.frame_pixel_scale not in PIXEL_SCALES:
            raise ValueError(
                f"model.frame_pixel_scale must be one of {sorted(PIXEL_SCALES)}; "
                f"received {m.frame_pixel_scale!r}."
            )
        weight = self.model.auxiliary_weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not weight >= 0
        ):
            raise ValueError(
                "model.auxiliary_weight must be a number >= 0 (0 turns the "
                f"per-modality heads off); received {weight!r}."
            )
        for name in ("video", "audio", "hub"):
            value = getattr(self.training, f"{name}_learning_rate_multiplier")
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (not value > 0)
            ):
                raise ValueError(
                    f"training.{name}_learning_rate_multiplier must be a positive "
                    f"number; received {value!r}."
                )
        freeze = self.training.freeze_tower_epochs
        if isinstance(freeze, bool) or not isinstance(freeze, int) or freeze < 0:
            raise ValueError(
                "training.freeze_tower_epochs must be an integer >= 0; received "
                f"{freeze!r}."
            )
        if freeze and not (
            m.fine_tune_hub
            and (
                pretrained_choice(m.frame_encoder) or pretrained_choice(m.audio_encoder)
            )
        ):
            raise ValueError(
                "training.freeze_tower_epochs > 0 delays the fine-tuning of "
                "pretrained towers: it needs model.fine_tune_hub=true and a hub: "
                "or keras_hub: model.frame_encoder or model.audio_encoder; set it "
                "to 0."
            )
        check_positive_integers(
            (
                ("data.num_frames", self.data.num_frames),
                ("training.epochs", self.training.epochs),
                ("training.batch_size", self.training.batch_size),
            )
        )
        check_clip_seconds(self.data.clip_seconds)
        self.data.validate()
        if self.data.frame_size < 32:
            raise ValueError(
                "data.frame_size must be >= 32 for VGG16; received "
                f"{self.data.frame_size}."
            )
        return self


def _demo():
    return VideoConfig(
        preset="demo",
        data=DataConfig(num_frames=8, frame_size=32, clip_seconds=1.0),
        model=ModelConfig(
            hidden_dim=64,
            num_heads=2,
            key_dim=32,
            num_layers=1,
            feature_layer="block5_pool",
            num_mel_bins=32,
            audio_filters=(32, 64),
        ),
        training=TrainingConfig(
            epochs=8,
            batch_size=32,
            learning_rate=1e-4,
            warmup_steps=30,
            precision="mixed_bfloat16",
        ),
    )


def _ucf101():
    # UCF101 clips run 1-30 s (7 s on average): an 8 s window keeps most whole.
    config = VideoConfig(preset="ucf101")
    config.data.clip_seconds = 8.0
    return config


def _kinetics():
    config = VideoConfig(preset="kinetics")
    config.data.clip_seconds = 10.0
    config.training.epochs = 40
    return config


def _demo_sync():
    # Two bouncing shapes, clicks at one's bounces (`demo_data.sync_clip`):
    # 2 s clips, 16 frames (one per 125 ms) to see each bounce.
    config = _demo()
    config.preset = "demo_sync"
    config.data.demo_task = "sync"
    config.data.clip_seconds = 2.0
    config.data.num_frames = 16
    config.model.time_encoding = True
    return config


PRESETS = {
    "demo": _demo,
    "demo_sync": _demo_sync,
    "ucf101": _ucf101,
    "kinetics": _kinetics,
}


def get_config(preset, overrides=None):
    """A validated config from a preset name and `section.key=value` overrides."""
    return config_from_presets(PRESETS, preset, overrides)
