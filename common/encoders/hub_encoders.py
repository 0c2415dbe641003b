"""Pretrained towers from TF-Hub / Kaggle SavedModels or any SavedModel folder.

A tower is named `hub:<handle or folder>` in the configs. The SavedModel is
loaded with `keras.layers.TFSMLayer` (`hub.KerasLayer` does not work inside
Keras 3 models), called through one of its signatures, and one of its
outputs is taken as the tower's features. Frozen unless `fine_tune`; then its
trainable variables train with the rest of the model (and are saved in the
run's `.weights.h5` checkpoints). Exports carry the SavedModel's graph and
variables inside, so they load with TensorFlow alone.
"""

import math
import os

import keras
import numpy as np
from keras import ops

from common.encoders.projection import projection_layer
from common.layers.validation import check_optional_positive_int
from common.towers import PIXEL_SCALES, hub_handle  # noqa: F401 (re-exported)


def _looks_local(handle):
    return handle.startswith(("/", ".", "~")) or os.path.exists(handle)


def resolve_saved_model(handle):
    """A local SavedModel folder for `handle`: the folder itself, or the copy
    `tensorflow_hub` downloads and caches (under `TFHUB_CACHE_DIR`) for a
    TF-Hub / Kaggle handle or URL."""
    if _looks_local(handle):
        path = os.path.abspath(os.path.expanduser(handle))
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(
                f"No SavedModel at {path!r} (a folder with saved_model.pb) for "
                f"the tower hub:{handle}."
            )
        return path
    try:
        import tensorflow_hub as hub

        path = hub.resolve(handle)
    except Exception as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise OSError(
            f"Could not download the SavedModel {handle!r} ({cause}). Without "
            "the network, download it on another machine and give its folder: "
            "hub:/path/to/saved_model."
        ) from None
    return path


def _select(outputs, key, what):
    """One tensor of a SavedModel's outputs (a dict, or a tensor)."""
    if not isinstance(outputs, dict):
        if key is not None:
            raise ValueError(
                f"{what} returns one tensor, not a dict: leave its output key "
                f"unset (received {key!r})."
            )
        return outputs
    if key is None:
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        raise ValueError(
            f"{what} returns {sorted(outputs)}: choose one with its output key."
        )
    if key not in outputs:
        raise ValueError(f"{what} has no output {key!r}; it returns {sorted(outputs)}.")
    return outputs[key]


def grid_of(count):
    """The `(rows, columns)` grid of `count` regions: square when `count`
    is a square, one row otherwise."""
    side = math.isqrt(count)
    return (side, side) if side * side == count else (1, count)


def masked_mean(features, mask):
    """Mean of `features` `[B, L, D]` over the positions where `mask`."""
    weights = ops.cast(mask, features.dtype)[..., None]
    return ops.sum(features * weights, axis=1) / ops.maximum(
        ops.sum(weights, axis=1), ops.cast(1.0, features.dtype)
    )


class RegionTower:
    """What the pretrained image towers share: a region grid `_grid` of
    `_channels`-wide features, optionally projected (`projection`)."""

    @property
    def fine_tunable(self):
        return self.fine_tune

    @property
    def feature_dim(self):
        return self.projection_dim or self._channels

    @property
    def grid_shape(self):
        return self._grid

    @property
    def num_regions(self):
        return self._grid[0] * self._grid[1]

    def build(self, images_shape=None):
        if self.projection is not None:
            self.projection.build((None, self.num_regions, self._channels))

    def _regions(self, features):
        """`{"region_features", "pooled_features"}` of float32 features."""
        regions = ops.reshape(features, (-1, self.num_regions, self._channels))
        if self.projection is not None:
            regions = self.projection(ops.cast(regions, self.compute_dtype))
        return {
            "region_features": regions,
            "pooled_features": ops.mean(regions, axis=1),
        }

    def compute_output_shape(self, images_shape):
        batch = images_shape[0]
        return {
            "region_features": (batch, self.num_regions, self.feature_dim),
            "pooled_features": (batch, self.feature_dim),
        }


class TokenTower:
    """What the pretrained text towers share: `_channels`-wide token
    features, optionally projected, pooled over the real tokens."""

    @property
    def feature_dim(self):
        return self.projection_dim or self._channels

    def build(self, text_shape=None):
        if self.projection is not None:
            self.projection.build((None, self.sequence_length, self._channels))

    def _tokens(self, features, mask):
        if self.projection is not None:
            features = self.projection(ops.cast(features, self.compute_dtype))
        return {
            "token_features": features,
            "padding_mask": mask,
            "pooled_features": masked_mean(features, mask),
        }


def _load(handle, signature, fine_tune, name):
    path = resolve_saved_model(handle)
    try:
        return keras.layers.TFSMLayer(
            path,
            call_endpoint=signature,
            trainable=bool(fine_tune),
            name=name,
            dtype="float32",
        )
    except ValueError as error:
        raise ValueError(f"hub:{handle}: {error}") from None


@keras.saving.register_keras_serializable(package="common")
class HubImageEncoder(RegionTower, keras.layers.Layer):
    """A SavedModel image tower returning region features and a pooled vector.

    The SavedModel takes float images `[B, H, W, 3]`; pixels (0-255 RGB) are
    scaled by `pixel_scale` first. Its chosen output may be a feature map
    `[B, h, w, C]` (each cell a region, row-major), a token sequence
    `[B, N, C]` (N regions; a square N gives a square grid) or a pooled
    vector `[B, C]` (one region).

    Args:
        handle: TF-Hub / Kaggle handle or URL, or a local SavedModel folder.
        image_shape: `(height, width, 3)` the images come in at.
        signature: the SavedModel's signature or function to call.
        output_key: the output to take when it returns a dict of several.
        pixel_scale: `"unit"` ([0, 1]), `"symmetric"` ([-1, 1]) or `"raw"`.
        fine_tune: train the SavedModel's variables (frozen by default).
        projection_dim: int or None. Project the features to this size.
        **kwargs: base layer arguments.

    Call arguments:
        images: `[B, H, W, 3]` uint8 or float pixels in 0-255.
        training: bool.

    Returns:
        A dict: `region_features` `[B, R, D]` and `pooled_features` `[B, D]`
        (the mean of the regions).
    """

    def __init__(
        self,
        handle,
        image_shape=(224, 224, 3),
        signature="serving_default",
        output_key=None,
        pixel_scale="unit",
        fine_tune=False,
        projection_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.handle = str(handle)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.signature = signature
        self.output_key = output_key
        if pixel_scale not in PIXEL_SCALES:
            raise ValueError(
                f"`pixel_scale` must be one of {sorted(PIXEL_SCALES)}; received "
                f"{pixel_scale!r}."
            )
        self.pixel_scale = pixel_scale
        self.fine_tune = bool(fine_tune)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        self.backbone = _load(self.handle, signature, self.fine_tune, "hub_image")
        probe = self._features(np.zeros((1,) + self.image_shape, "float32"))
        if len(probe.shape) not in (2, 3, 4):
            raise ValueError(
                f"hub:{self.handle} gives image features of shape "
                f"{tuple(probe.shape)}: expected [B, h, w, C], [B, N, C] or [B, C]."
            )
        shape = tuple(int(d) for d in probe.shape[1:])
        if len(shape) == 3:
            self._grid = shape[:2]
        elif len(shape) == 2:
            self._grid = grid_of(shape[0])
        else:
            self._grid = (1, 1)
        self._channels = shape[-1]
        self.projection = projection_layer(self.projection_dim, self.dtype_policy)

    def preprocess(self, images):
        scale, shift = PIXEL_SCALES[self.pixel_scale]
        return ops.cast(images, "float32") * scale + shift

    def _features(self, pixels):
        outputs = self.backbone(pixels)
        return _select(outputs, self.output_key, f"hub:{self.handle}")

    def call(self, images, training=None):
        features = self._features(self.preprocess(images))
        return self._regions(ops.cast(features, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "handle": self.handle,
                "image_shape": self.image_shape,
                "signature": self.signature,
                "output_key": self.output_key,
                "pixel_scale": self.pixel_scale,
                "fine_tune": self.fine_tune,
                "projection_dim": self.projection_dim,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="common")
class HubTextEncoder(TokenTower, keras.layers.Layer):
    """A SavedModel text tower taking raw strings (its tokenizer inside).

    Its chosen output is token features `[B, L, D]` (with a mask output
    `[B, L]` of real tokens, or every position counted) or a pooled vector
    `[B, D]` (one token).

    Args:
        handle: TF-Hub / Kaggle handle or URL, or a local SavedModel folder.
        signature: the signature or function to call on a string tensor `[B]`.
        output_key: the features output when it returns a dict of several.
        mask_key: the output holding the token mask (1 / True = real token).
        fine_tune: train the SavedModel's variables (frozen by default).
        projection_dim: int or None. Project the features to this size.
        **kwargs: base layer arguments.

    Call arguments:
        text: string tensor `[B]` (or `[B, 1]`).
        training: bool.

    Returns:
        A dict like `LSTMTextEncoder`'s: `token_features` `[B, L, D]`,
        `padding_mask` bool `[B, L]` and `pooled_features` `[B, D]` (the mean
        of the real tokens).
    """

    def __init__(
        self,
        handle,
        signature="serving_default",
        output_key=None,
        mask_key=None,
        fine_tune=False,
        projection_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.handle = str(handle)
        self.signature = signature
        self.output_key = output_key
        self.mask_key = mask_key
        self.fine_tune = bool(fine_tune)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        self.backbone = _load(self.handle, signature, self.fine_tune, "hub_text")
        features, _ = self._outputs(np.array(["a", "b"], dtype=object))
        if len(features.shape) not in (2, 3):
            raise ValueError(
                f"hub:{self.handle} gives text features of shape "
                f"{tuple(features.shape)}: expected [B, L, D] or [B, D]."
            )
        self.sequence_length = int(features.shape[1]) if len(features.shape) == 3 else 1
        self._channels = int(features.shape[-1])
        self.projection = projection_layer(self.projection_dim, self.dtype_policy)

    def _outputs(self, text):
        outputs = self.backbone(ops.reshape(text, (-1,)))
        what = f"hub:{self.handle}"
        mask = None
        if self.mask_key is not None:
            if not isinstance(outputs, dict) or self.mask_key not in outputs:
                names = sorted(outputs) if isinstance(outputs, dict) else "one tensor"
                raise ValueError(
                    f"{what} has no mask output {self.mask_key!r}: {names}."
                )
            mask = outputs[self.mask_key]
            outputs = {k: v for k, v in outputs.items() if k != self.mask_key}
        return _select(outputs, self.output_key, what), mask

    def call(self, text, training=None):
        features, mask = self._outputs(text)
        features = ops.cast(features, "float32")
        if len(features.shape) == 2:
            features = features[:, None, :]
        if mask is None:
            mask = ops.ones(ops.shape(features)[:2], "bool")
        else:
            mask = ops.cast(mask, "bool")
        return self._tokens(features, mask)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "handle": self.handle,
                "signature": self.signature,
                "output_key": self.output_key,
                "mask_key": self.mask_key,
                "fine_tune": self.fine_tune,
                "projection_dim": self.projection_dim,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="common")
class HubAudioEncoder(keras.layers.Layer):
    """A SavedModel audio tower taking the waveform (e.g. a YAMNet-style
    model: 16 kHz float samples in [-1, 1]).

    Its chosen output is per-frame features (`[B, T, D]`, or `[T, D]` per
    clip for a model that takes one unbatched waveform) or a pooled vector
    (`[B, D]`: one frame).

    Args:
        handle: TF-Hub / Kaggle handle or URL, or a local SavedModel folder.
        signature: the signature or function to call.
        output_key: the output to take when it returns a dict of several.
        batched: the SavedModel takes `[B, N]`; `False`: one waveform `[N]`
            at a time (as YAMNet does), called per clip.
        fine_tune: train the SavedModel's variables (frozen by default).
        projection_dim: int or None. Project the features to this size.
        **kwargs: base layer arguments.

    Call arguments:
        audio: float32 `[B, N]` waveforms.
        training: bool.

    Returns:
        A dict like `Conv1DAudioEncoder`'s: `frame_features` `[B, T, D]` and
        `pooled_features` `[B, D]`.
    """

    def __init__(
        self,
        handle,
        signature="serving_default",
        output_key=None,
        batched=True,
        fine_tune=False,
        projection_dim=None,
        probe_samples=16000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.handle = str(handle)
        self.signature = signature
        self.output_key = output_key
        self.batched = bool(batched)
        self.fine_tune = bool(fine_tune)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        self.backbone = _load(self.handle, signature, self.fine_tune, "hub_audio")
        probe = np.zeros(
            (1, int(probe_samples)) if self.batched else (int(probe_samples),)
        )
        features = self._one(probe.astype("float32"))
        if len(features.shape) not in ((2, 3) if self.batched else (1, 2)):
            raise ValueError(
                f"hub:{self.handle} gives audio features of shape "
                f"{tuple(features.shape)}: expected [B, T, D] or [B, D] (batched), "
                "[T, D] or [D] (one waveform at a time)."
            )
        self._channels = int(features.shape[-1])
        self.projection = projection_layer(self.projection_dim, self.dtype_policy)

    @property
    def fine_tunable(self):
        return self.fine_tune

    @property
    def feature_dim(self):
        return self.projection_dim or self._channels

    def build(self, audio_shape=None):
        if self.projection is not None:
            self.projection.build((None, None, self._channels))

    def _one(self, waveform):
        return _select(self.backbone(waveform), self.output_key, f"hub:{self.handle}")

    def _features(self, audio):
        """`[B, T, D]` float32 features of `[B, N]` waveforms."""
        import tensorflow as tf

        audio = ops.cast(audio, "float32")
        if self.batched:
            features = ops.cast(self._one(audio), "float32")
            return features if len(features.shape) == 3 else features[:, None, :]
        signature = tf.TensorSpec((None, self._channels), tf.float32)

        def per_clip(waveform):
            out = ops.cast(self._one(waveform), "float32")
            return out[None, :] if len(out.shape) == 1 else out

        return tf.map_fn(per_clip, audio, fn_output_signature=signature)

    def call(self, audio, training=None):
        features = self._features(audio)
        if self.projection is not None:
            features = self.projection(ops.cast(features, self.compute_dtype))
        return {
            "frame_features": features,
            "pooled_features": ops.mean(features, axis=1),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "handle": self.handle,
                "signature": self.signature,
                "output_key": self.output_key,
                "batched": self.batched,
                "fine_tune": self.fine_tune,
                "projection_dim": self.projection_dim,
            }
        )
        return config
