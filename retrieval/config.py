"""Configuration of the retrieval application: dataclasses and presets."""

import dataclasses

from common.data.limits import MAX_IMAGE_PIXELS
from common.towers import PIXEL_SCALES, pretrained_choice
from common.training import config as common_config
from common.training.config import (
    check_positive_integers,
    config_from_presets,
)

LOSSES = ("contrastive", "triplet")
# How many pixels one region of each VGG16 feature layer covers, per side.
FEATURE_STRIDES = {"block4_pool": 16, "block5_conv3": 16, "block5_pool": 32}


@dataclasses.dataclass
class DataConfig(common_config.DataConfig):
    """Where the images and captions are and how they are read: the settings
    of `common.training.config.DataConfig` (`path`: a folder or manifest in
    one of `retrieval.data`'s layouts, or a prepared folder) and

    Attributes:
        image_size: square side the images are resized to.
        augment: mild random crops in training.
        max_image_pixels: larger images are skipped unread.
        demo_train_images: demo data: training images.
        demo_val_images: demo data: validation images.
        demo_test_images: demo data: test images (distinct combinations).
    """

    image_size: int = 224
    augment: bool = True
    max_image_pixels: int = MAX_IMAGE_PIXELS
    demo_train_images: int = 1500
    demo_val_images: int = 100
    demo_test_images: int = 300


@dataclasses.dataclass
class ModelConfig:
    """The model's shape.

    Attributes:
        weights: VGG16 weights: `"imagenet"`, `None`, or a local file path.
        feature_layer: VGG16 layer giving the regions.
        embedding_dim: joint embedding size (also the region/token width).
        vocabulary_size: token table size (with padding and OOV).
        sequence_length: tokens kept per caption.
        word_embedding_dim: token embedding size.
        text_hidden_dim: LSTM units per direction.
        bidirectional: bidirectional LSTM.
        num_heads: cross-modal attention heads.
        key_dim: size per head.
        matching_layers: fusion blocks of the image-text matching head.
        dropout_rate: dropout in the text encoder and attention.
        image_encoder: `vgg16`, or `hub:<TF-Hub/Kaggle handle or local
            SavedModel folder>` (a pretrained image tower; its feature map
            cells become the regions, a pooled vector one region), or
            `keras_hub:<preset name or local preset folder>` (a CLIP/SigLIP
            preset's vision encoder; its patch tokens are the regions).
        text_encoder: `lstm`, or `hub:<handle or folder>` (a SavedModel
            taking strings, tokenizer inside), or `keras_hub:<preset or
            folder>` (a CLIP/SigLIP preset's text encoder and tokenizer).
        hub_signature: signature the hub towers are called through.
        image_encoder_output: output key of the hub image tower (when it
            returns several).
        image_pixel_scale: pixel range the hub image tower expects: `unit`
            ([0, 1]), `symmetric` ([-1, 1]) or `raw` (0-255).
        text_encoder_output: output key of the hub text tower's features.
        text_encoder_mask: output key of its token mask (none: every
            position is a token).
        fine_tune_hub: train the hub towers (frozen by default; their rate
            is `training.hub_learning_rate_multiplier` x the base rate, and
            a fine-tuned image tower waits `training.freeze_backbone_epochs`).
    """

    weights: str | None = "imagenet"
    feature_layer: str = "block5_pool"
    embedding_dim: int = 512
    vocabulary_size: int = 10000
    sequence_length: int = 32
    word_embedding_dim: int = 300
    text_hidden_dim: int = 512
    bidirectional: bool = True
    num_heads: int = 4
    key_dim: int = 64
    matching_layers: int = 1
    dropout_rate: float = 0.1
    image_encoder: str = "vgg16"
    text_encoder: str = "lstm"
    hub_signature: str = "serving_default"
    image_encoder_output: str | None = None
    image_pixel_scale: str = "unit"
    text_encoder_output: str | None = None
    text_encoder_mask: str | None = None
    fine_tune_hub: bool = False


@dataclasses.dataclass
class TrainingConfig(common_config.TrainingConfig):
    """How the model is trained: the settings of
    `common.training.config.TrainingConfig` and

    Attributes:
        steps_per_epoch: cap on steps per epoch (`None` = one pass).
        freeze_backbone_epochs: epochs with VGG16 frozen before fine-tuning.
        loss: `"contrastive"` (InfoNCE) or `"triplet"` (VSE++).
        margin: triplet-loss margin.
        matching_loss_weight: weight of the image-text matching loss.
        matching_learning_rate_multiplier: the matching head's learning rate
            as a multiple of `learning_rate` (the head starts from scratch on
            top of the towers and learns from fewer, harder examples).
        hub_learning_rate_multiplier: the fine-tuned hub towers' learning
            rate as a multiple of `learning_rate`.
        negative_temperature: softmax temperature of the matching loss's
            hard-negative sampling (lower: harder negatives).
        rerank_weight: weight of the match probability added to the dual
            encoder's similarity when re-ranking; chosen on the validation
            split at the end of training (`None`: not chosen yet).
        rerank_top_k: candidates re-ranked by cross-attention in `evaluate`.
        validation_batch_size: batch size when embedding for validation.
    """

    # the schedule
    batch_size: int = 128
    learning_rate: float = 2e-4
    warmup_steps: int = 500
    steps_per_epoch: int | None = None
    freeze_backbone_epochs: int = 2
    # the losses
    loss: str = "contrastive"
    margin: float = 0.2
    matching_loss_weight: float = 1.0
    matching_learning_rate_multiplier: float = 1.0
    hub_learning_rate_multiplier: float = 0.1
    negative_temperature: float = 0.1
    # re-ranking and validation
    rerank_weight: float | None = None
    rerank_top_k: int = 20
    validation_batch_size: int = 256


@dataclasses.dataclass
class RetrievalConfig:
    """A retrieval run's configuration, saved as `config.json` in its folder:
    the `preset` it started from, the image-caption `data` it reads, the
    dual encoder and matching head (`model`) and how they are `training`ed
    (`DataConfig`, `ModelConfig`, `TrainingConfig`)."""

    preset: str = "flickr8k"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)

    def validate(self):
        d, m, t = self.data, self.model, self.training
        if d.image_size < 32:
            raise ValueError(
                f"data.image_size must be >= 32 for VGG16; received {d.image_size}."
            )
        d.validate()
        if t.loss not in LOSSES:
            raise ValueError(
                f"training.loss must be one of {LOSSES}; received {t.loss!r}."
            )
        t.validate()
        check_positive_integers(
            (
                ("model.embedding_dim", m.embedding_dim),
                ("model.sequence_length", m.sequence_length),
                ("model.num_heads", m.num_heads),
                ("model.key_dim", m.key_dim),
            )
        )
        if t.batch_size < 2:
            raise ValueError(
                "training.batch_size must be >= 2 (in-batch negatives); received "
                f"{t.batch_size}."
            )
        image_pretrained = pretrained_choice(m.image_encoder)
        if not image_pretrained and m.image_encoder != "vgg16":
            raise ValueError(
                "model.image_encoder must be vgg16, hub:<TF-Hub/Kaggle handle or "
                "SavedModel folder> or keras_hub:<preset or preset folder>; "
                f"received {m.image_encoder!r}."
            )
        if not pretrained_choice(m.text_encoder) and m.text_encoder != "lstm":
            raise ValueError(
                "model.text_encoder must be lstm, hub:<TF-Hub/Kaggle handle or "
                "SavedModel folder> or keras_hub:<preset or preset folder>; "
                f"received {m.text_encoder!r}."
            )
        if m.image_pixel_scale not in PIXEL_SCALES:
            raise ValueError(
                f"model.image_pixel_scale must be one of {sorted(PIXEL_SCALES)}; "
                f"received {m.image_pixel_scale!r}."
            )
        if not t.hub_learning_rate_multiplier > 0:
            raise ValueError(
                "training.hub_learning_rate_multiplier must be positive; received "
                f"{t.hub_learning_rate_multiplier}."
            )
        if not t.matching_learning_rate_multiplier > 0:
            raise ValueError(
                "training.matching_learning_rate_multiplier must be positive; "
                f"received {t.matching_learning_rate_multiplier}."
            )
        if image_pretrained:
            # The pretrained tower's output decides the region grid (any, even one
            # pooled vector); VGG16's settings do not apply.
            return self
        if t.freeze_backbone_epochs and m.weights in (None, "none", "None"):
            raise ValueError(
                "training.freeze_backbone_epochs > 0 freezes a randomly initialised "
                "VGG16 (model.weights is None); set it to 0."
            )
        if m.feature_layer not in FEATURE_STRIDES:
            raise ValueError(
                "model.feature_layer must be block5_pool, block5_conv3 or block4_pool; "
                f"received {m.feature_layer!r}."
            )
        grid = d.image_size // FEATURE_STRIDES[m.feature_layer]
        if grid < 2:
            raise ValueError(
                f"model.feature_layer={m.feature_layer} at data.image_size="
                f"{d.image_size} gives a {grid}x{grid} region grid: cross-modal "
                "attention needs at least 2x2 regions to attend over (use "
                "block5_conv3 or block4_pool, or larger images)."
            )
        return self


def _demo():
    return RetrievalConfig(
        preset="demo",
        # Many distinct training images over few epochs: shape (circle, square,
        # triangle) is the attribute that needs the most data to generalise.
        data=DataConfig(image_size=64, augment=False, demo_train_images=6000),
        model=ModelConfig(
            weights=None,
            feature_layer="block5_conv3",
            embedding_dim=128,
            vocabulary_size=200,
            sequence_length=16,
            word_embedding_dim=64,
            text_hidden_dim=128,
            num_heads=2,
            key_dim=32,
            dropout_rate=0.0,
        ),
        training=TrainingConfig(
            epochs=3,
            batch_size=32,
            learning_rate=1.5e-4,
            warmup_steps=100,
            freeze_backbone_epochs=0,
            # The matching head starts from scratch and sees one positive and
            # two hard negatives per pair: at the towers' rate it stays at the
            # constant-prediction loss (0.637) for all 3 epochs.
            matching_learning_rate_multiplier=10.0,
            precision="mixed_bfloat16",
            validation_batch_size=128,
        ),
    )


def _flickr(preset):
    return RetrievalConfig(preset=preset)


def _coco():
    config = RetrievalConfig(preset="coco")
    config.training.epochs = 20
    return config


PRESETS = {
    "demo": _demo,
    "flickr8k": lambda: _flickr("flickr8k"),
    "flickr30k": lambda: _flickr("flickr30k"),
    "coco": _coco,
}


def get_config(preset, overrides=None):
    """A validated config from a preset name and `section.key=value` overrides."""
    return config_from_presets(PRESETS, preset, overrides)
