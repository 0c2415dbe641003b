"""VGG16 image encoder returning region features and a pooled vector."""

import os
import warnings

import keras
from keras import ops

from common.encoders.projection import projection_layer
from common.layers.validation import check_optional_positive_int

# ImageNet channel means of VGG16's "caffe" preprocessing, in BGR order.
_VGG16_BGR_MEAN = (103.939, 116.779, 123.68)
_NOTOP_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _weights_cache_path():
    keras_home = os.environ.get(
        "KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")
    )
    return os.path.join(keras_home, "models", _NOTOP_WEIGHTS_FILE)


def build_vgg16_backbone(image_shape, weights):
    """`keras.applications.VGG16(include_top=False)` with clear weight errors.

    `weights` is `"imagenet"` (Keras' normal download, cached under
    `~/.keras/models/`), `None` (random init), or a path to a local
    `.h5`/`.weights.h5` file of the headless VGG16.
    """
    image_shape = tuple(int(d) for d in image_shape)
    if len(image_shape) != 3 or min(image_shape) <= 0:
        raise ValueError(
            f"`image_shape` must be (height, width, channels); received {image_shape}."
        )
    if min(image_shape[:2]) < 32:
        raise ValueError(
            "VGG16 needs images of at least 32x32; received `image_shape` "
            f"{image_shape}."
        )
    if weights is not None and weights != "imagenet":
        if not isinstance(weights, (str, os.PathLike)) or not os.path.isfile(weights):
            raise FileNotFoundError(
                f"VGG16 weights file not found: {weights!r} (expected 'imagenet', "
                "None, or a path to a headless VGG16 .h5/.weights.h5 file)."
            )
    if weights == "imagenet" and image_shape[-1] != 3:
        raise ValueError(
            "ImageNet VGG16 weights need 3-channel images; received `image_shape` "
            f"{image_shape}. Use weights=None for other channel counts."
        )
    if weights == "imagenet":
        try:
            return keras.applications.VGG16(
                include_top=False, weights="imagenet", input_shape=image_shape
            )
        except Exception as error:
            raise OSError(
                "Could not download the ImageNet VGG16 weights. Put the file "
                f"{_NOTOP_WEIGHTS_FILE} at {_weights_cache_path()} (or pass "
                f"weights=PATH to a local copy, or weights=None). Cause: {error}"
            ) from error
    with warnings.catch_warnings():
        # Other channel counts (e.g. frames stacked with their differences)
        # are intended here; Keras warns about anything but 1 or 3.
        warnings.filterwarnings("ignore", "This model usually expects 1 or 3")
        backbone = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=image_shape
        )
    if weights is not None:
        backbone.load_weights(os.fspath(weights))
    return backbone


@keras.saving.register_keras_serializable(package="common")
class VGG16ImageEncoder(keras.layers.Layer):
    """VGG16 region features and a pooled image vector.

    Images go in as uint8 or float pixels in 0-255 (RGB); VGG16's own
    preprocessing (RGB to BGR, ImageNet mean subtraction) runs inside, so an
    exported model takes raw pixels. Extra channels beyond the first three
    (e.g. frame differences) pass through unshifted. The feature map of
    `feature_layer` (the last conv block) is flattened into regions.

    Args:
        image_shape: tuple `(height, width, channels)`.
        weights: `"imagenet"` (downloaded by Keras on first use), `None`, or a
            path to a headless VGG16 weights file.
        feature_layer: str. VGG16 layer whose output gives the regions:
            `"block5_pool"` (7x7 regions at 224x224) or `"block5_conv3"`
            (14x14).
        projection_dim: int or None. Project the 512-d regions to this size.
        **kwargs: base layer arguments (`trainable=False` freezes VGG16).

    Call arguments:
        images: `[B, H, W, C]` uint8 or float pixels in 0-255.
        training: bool.

    Returns:
        A dict: `region_features` `[B, R, D]` and `pooled_features` `[B, D]`
        (the mean of the regions), with `D` = `projection_dim` or 512.

    Example:

    >>> import numpy as np
    >>> encoder = VGG16ImageEncoder((32, 32, 3), weights=None, projection_dim=8)
    >>> out = encoder(np.zeros((2, 32, 32, 3), "uint8"))
    >>> tuple(out["region_features"].shape), tuple(out["pooled_features"].shape)
    ((2, 1, 8), (2, 8))

    Reference:
        Simonyan and Zisserman, "Very Deep Convolutional Networks for
        Large-Scale Image Recognition", ICLR 2015.
    """

    def __init__(
        self,
        image_shape=(224, 224, 3),
        weights="imagenet",
        feature_layer="block5_pool",
        projection_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.weights_source = weights
        self.feature_layer = feature_layer
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        vgg16 = build_vgg16_backbone(self.image_shape, weights)
        names = [layer.name for layer in vgg16.layers]
        if feature_layer not in names:
            raise ValueError(
                f"`feature_layer` must be a VGG16 layer name such as 'block5_pool'"
                f" or 'block5_conv3'; received {feature_layer!r}."
            )
        self.backbone = keras.Model(
            vgg16.input, vgg16.get_layer(feature_layer).output, name="vgg16"
        )
        self.projection = projection_layer(self.projection_dim, self.dtype_policy)

    @property
    def feature_dim(self):
        return self.projection_dim or self.backbone.output.shape[-1]

    @property
    def grid_shape(self):
        """`(height, width)` of the region grid (regions are row-major)."""
        _, height, width, _ = self.backbone.output.shape
        return int(height), int(width)

    @property
    def num_regions(self):
        height, width = self.grid_shape
        return height * width

    def build(self, images_shape):
        if tuple(images_shape[1:]) != self.image_shape:
            raise ValueError(
                f"Images must be [B, {', '.join(map(str, self.image_shape))}]; "
                f"received shape {tuple(images_shape)}."
            )
        if self.projection is not None:
            self.projection.build((None, self.num_regions, 512))

    def preprocess(self, images):
        """uint8/float RGB 0-255 -> VGG16 input (BGR, mean-subtracted)."""
        images = ops.cast(images, "float32")
        mean = ops.convert_to_tensor(_VGG16_BGR_MEAN, dtype="float32")
        bgr = ops.flip(images[..., :3], axis=-1) - mean
        if self.image_shape[-1] > 3:
            bgr = ops.concatenate([bgr, images[..., 3:]], axis=-1)
        return bgr

    def call(self, images, training=None):
        if images.shape is not None and len(images.shape) != 4:
            raise ValueError(
                f"Images must be [B, H, W, C]; received shape {tuple(images.shape)}."
            )
        features = self.backbone(self.preprocess(images), training=training)
        shape = ops.shape(features)
        regions = ops.reshape(features, (shape[0], shape[1] * shape[2], shape[3]))
        if self.projection is not None:
            regions = self.projection(regions)
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

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                # The weights travel with the saved model; rebuilding from the
                # config must not download or read the original file again.
                "weights": None,
                "feature_layer": self.feature_layer,
                "projection_dim": self.projection_dim,
            }
        )
        return config
