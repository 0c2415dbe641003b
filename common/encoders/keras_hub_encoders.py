"""Pretrained towers from keras-hub presets (CLIP, SigLIP and other backbones).

A tower is named `keras_hub:<preset name or local preset folder>`. The image
tower is the preset's vision encoder (a CLIP/SigLIP backbone's
`vision_encoder`, or the backbone itself), preceded by the preset's image
converter (resize and normalisation); its patch tokens are the regions. The
text tower is the preset's text encoder with its own tokenizer and a
start/end packer; its token sequence and padding mask feed the cross-modal
attention. Frozen unless `fine_tune`. keras-hub tokenizers run on
TensorFlow Text ops: an export with a keras-hub text tower loads where
`tensorflow_text` is importable (the stock TF Serving image has its ops).
"""

import math
import os

import keras
from keras import ops

from common.encoders.hub_encoders import RegionTower, TokenTower, grid_of
from common.encoders.projection import projection_layer
from common.layers.validation import check_optional_positive_int


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(
            "keras_hub towers need the keras-hub package: pip install "
            f"'multimodal-suite[keras_hub]' (or keras-hub). Cause: {error}"
        ) from None
    return keras_hub


def _load(what, preset, load):
    """`load(preset)`, with a one-line error naming the preset when it is
    neither a local folder nor downloadable."""
    local = preset.startswith(("/", ".", "~")) or os.path.exists(preset)
    if local:
        preset = os.path.abspath(os.path.expanduser(preset))
        if not os.path.isfile(os.path.join(preset, "config.json")):
            raise FileNotFoundError(
                f"No keras-hub preset at {preset!r} (a folder with config.json) "
                f"for the tower keras_hub:{preset}."
            )
    try:
        return load(preset)
    except Exception as error:
        if local:
            raise
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(
            f"Could not load the keras-hub {what} of preset {preset!r} ({cause}). "
            "Without the network, save the preset on another machine "
            "(`save_to_preset`) and give its folder: keras_hub:/path/to/preset."
        ) from None


def _encoder(backbone, part):
    return getattr(backbone, part, None) or backbone


def _token_model(encoder):
    """`encoder`, or for one that ends in a pooling head (SigLIP's encoders
    return `[B, D]`), the model up to its last token sequence."""
    output = encoder.output
    if isinstance(output, dict) or len(output.shape) != 2:
        return encoder
    for layer in reversed(encoder.layers):
        shape = getattr(layer, "output", None)
        if shape is not None and not isinstance(shape, dict) and len(shape.shape) == 3:
            return keras.Model(encoder.input, layer.output, name=encoder.name)
    return encoder


def _set_frozen(layer, fine_tune):
    layer.trainable = bool(fine_tune)
    return layer


@keras.saving.register_keras_serializable(package="common")
class KerasHubImageEncoder(RegionTower, keras.layers.Layer):
    """A keras-hub preset's vision encoder returning region features.

    Args:
        preset: a keras-hub preset name (downloaded from Kaggle / Hugging
            Face by keras-hub) or a local preset folder.
        image_shape: `(height, width, 3)` the images come in at.
        fine_tune: train the encoder (frozen by default).
        projection_dim: int or None. Project the features to this size.
        **kwargs: base layer arguments.

    Call arguments:
        images: `[B, H, W, 3]` uint8 or float pixels in 0-255.

    Returns:
        `region_features` `[B, R, D]` (the patch tokens; a class token is
        dropped) and `pooled_features` `[B, D]`.
    """

    def __init__(
        self,
        preset,
        image_shape=(224, 224, 3),
        fine_tune=False,
        projection_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        hub = _keras_hub()
        self.preset = str(preset)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.fine_tune = bool(fine_tune)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        backbone = _load("backbone", self.preset, hub.models.Backbone.from_preset)
        self.backbone = _set_frozen(
            _token_model(_encoder(backbone, "vision_encoder")), fine_tune
        )
        try:
            self.converter = hub.layers.ImageConverter.from_preset(self.preset)
        except Exception:
            self.converter = None  # a preset without one: resize, scale to [0, 1]
        size = self.backbone.input_shape
        size = (
            size.get("images", next(iter(size.values())))
            if isinstance(size, dict)
            else size
        )
        self.input_size = tuple(int(d) for d in size[1:3])
        probe = self._sequence(ops.zeros((1,) + self.image_shape, "float32"))
        count, self._channels = int(probe.shape[1]), int(probe.shape[2])
        side = math.isqrt(count)
        self._drop_first = (
            side * side != count and math.isqrt(count - 1) ** 2 == count - 1
        )
        self._grid = grid_of(count - int(self._drop_first))
        self.projection = projection_layer(self.projection_dim, self.dtype_policy)

    def _sequence(self, images):
        images = ops.cast(images, "float32")
        if self.converter is not None:
            pixels = self.converter(images)
        else:
            pixels = ops.image.resize(images, self.input_size) / 255.0
        if tuple(pixels.shape[1:3]) != self.input_size:
            pixels = ops.image.resize(pixels, self.input_size)
        out = self.backbone({"images": pixels})
        if isinstance(out, dict):
            out = out.get("sequence_output", next(iter(out.values())))
        if len(out.shape) == 4:  # a feature map
            out = ops.reshape(out, (-1, out.shape[1] * out.shape[2], out.shape[3]))
        return ops.cast(out, "float32")

    def call(self, images, training=None):
        tokens = self._sequence(images)
        return self._regions(tokens[:, 1:] if self._drop_first else tokens)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "preset": self.preset,
                "image_shape": self.image_shape,
                "fine_tune": self.fine_tune,
                "projection_dim": self.projection_dim,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="common")
class KerasHubTextEncoder(TokenTower, keras.layers.Layer):
    """A keras-hub preset's text encoder with its own tokenizer.

    Args:
        preset: a keras-hub preset name or a local preset folder.
        sequence_length: tokens per text (with start and end tokens).
        fine_tune: train the encoder (frozen by default).
        projection_dim: int or None. Project the features to this size.
        **kwargs: base layer arguments.

    Call arguments:
        text: string tensor `[B]` (or `[B, 1]`).

    Returns:
        `token_features` `[B, L, D]`, `padding_mask` bool `[B, L]` and
        `pooled_features` `[B, D]` (the mean of the real tokens).
    """

    def __init__(
        self,
        preset,
        sequence_length=32,
        fine_tune=False,
        projection_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        hub = _keras_hub()
        self.preset = str(preset)
        self.sequence_length = int(sequence_length)
        self.fine_tune = bool(fine_tune)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        backbone = _load("backbone", self.preset, hub.models.Backbone.from_preset)
        self.backbone = _set_frozen(
            _token_model(_encoder(backbone, "text_encoder")), fine_tune
        )
        self.tokenizer = _load(
            "tokenizer", self.preset, hub.models.Tokenizer.from_preset
        )
        end = getattr(self.tokenizer, "end_token_id", None)
        pad = getattr(self.tokenizer, "pad_token_id", None)
        self.packer = hub.layers.StartEndPacker(
            sequence_length=self.sequence_length,
            start_value=getattr(self.tokenizer, "start_token_id", None),
            end_value=end,
            pad_value=pad if pad is not None else (end if end is not None else 0),
            return_padding_mask=True,
        )
        probe = self._features(ops.convert_to_tensor(["a"]))[0]
        self._channels = int(probe.shape[-1])
        self.projection = projection_layer(self.projection_dim, self.dtype_policy)

    def _features(self, text):
        ids, mask = self.packer(self.tokenizer(ops.reshape(text, (-1,))))
        out = self.backbone({"token_ids": ops.cast(ids, "int32")})
        if isinstance(out, dict):
            out = out.get("sequence_output", next(iter(out.values())))
        return ops.cast(out, "float32"), ops.cast(mask, "bool")

    def call(self, text, training=None):
        return self._tokens(*self._features(text))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "preset": self.preset,
                "sequence_length": self.sequence_length,
                "fine_tune": self.fine_tune,
                "projection_dim": self.projection_dim,
            }
        )
        return config
