"""Symmetric InfoNCE (CLIP) contrastive loss."""

import math

import keras
from keras import ops


def _normalize(embeddings):
    return ops.normalize(ops.cast(embeddings, "float32"), axis=-1, order=2)


def _check_pair(image_embeddings, text_embeddings):
    image_shape, text_shape = (
        tuple(image_embeddings.shape),
        tuple(text_embeddings.shape),
    )
    if len(image_shape) != 2 or len(text_shape) != 2:
        raise ValueError(
            "Embeddings must be [batch, dim]; received image shape "
            f"{image_shape} and text shape {text_shape}."
        )
    for axis, what in ((0, "batch size"), (1, "embedding dim")):
        a, b = image_shape[axis], text_shape[axis]
        if a is not None and b is not None and a != b:
            raise ValueError(
                f"Image and text embeddings must have the same {what}; received "
                f"image shape {image_shape} and text shape {text_shape}."
            )


def contrastive_loss(
    image_embeddings,
    text_embeddings,
    logit_scale,
    all_image_embeddings=None,
    all_text_embeddings=None,
    offset=0,
):
    """Symmetric InfoNCE loss over a batch of matching (image, text) pairs.

    Row `i` of both inputs is a matching pair; every other row of the batch is
    a negative. With L2-normalised embeddings `I`, `T`, the logits are
    `logit_scale * I T^T`; the loss is the mean of the cross-entropy of each
    image against the texts and of each text against the images, with the
    diagonal as the target. Computed in float32.

    Under `tf.distribute`, pass the global batch gathered across replicas
    (`ReplicaContext.all_gather`, which passes gradients back) as
    `all_image_embeddings` / `all_text_embeddings` and this replica's first
    row in it as `offset`: the local rows are then scored against every row
    of the global batch (open_clip's `gather_with_grad` with local loss), and
    the mean over replicas equals the loss of the whole batch on one device.

    Args:
        image_embeddings: tensor `[B, D]` (normalised here).
        text_embeddings: tensor `[B, D]` (normalised here).
        logit_scale: scalar multiplier of the cosine similarities (the inverse
            temperature, already exponentiated).
        all_image_embeddings: optional `[G, D]`, the global batch's images.
        all_text_embeddings: optional `[G, D]`, the global batch's texts.
        offset: index of `image_embeddings[0]` in the global batch.

    Returns:
        Scalar loss.

    Example:

    >>> import numpy as np
    >>> e = np.eye(4, dtype="float32")
    >>> float(contrastive_loss(e, e, 100.0)) < 1e-3
    True

    Reference:
        Radford et al., "Learning Transferable Visual Models From Natural
        Language Supervision", ICML 2021; open_clip's `ClipLoss`.
    """
    image_embeddings = ops.convert_to_tensor(image_embeddings)
    text_embeddings = ops.convert_to_tensor(text_embeddings)
    _check_pair(image_embeddings, text_embeddings)
    images, texts = _normalize(image_embeddings), _normalize(text_embeddings)
    scale = ops.cast(logit_scale, "float32")
    if all_image_embeddings is None and all_text_embeddings is None:
        logits_per_image = scale * ops.matmul(images, ops.transpose(texts))
        logits_per_text = ops.transpose(logits_per_image)
        labels = ops.arange(ops.shape(logits_per_image)[0])
    else:
        if all_image_embeddings is None or all_text_embeddings is None:
            raise ValueError(
                "Pass both `all_image_embeddings` and `all_text_embeddings`, or "
                "neither."
            )
        all_images = _normalize(ops.convert_to_tensor(all_image_embeddings))
        all_texts = _normalize(ops.convert_to_tensor(all_text_embeddings))
        logits_per_image = scale * ops.matmul(images, ops.transpose(all_texts))
        logits_per_text = scale * ops.matmul(texts, ops.transpose(all_images))
        labels = offset + ops.arange(ops.shape(images)[0])
    image_loss = keras.losses.sparse_categorical_crossentropy(
        labels, logits_per_image, from_logits=True
    )
    text_loss = keras.losses.sparse_categorical_crossentropy(
        labels, logits_per_text, from_logits=True
    )
    return 0.5 * (ops.mean(image_loss) + ops.mean(text_loss))


@keras.saving.register_keras_serializable(package="common")
class ContrastiveLoss(keras.layers.Layer):
    """`contrastive_loss` with a learnable temperature.

    Holds `logit_scale`, a scalar weight initialised to `log(1 / 0.07)`; the
    multiplier applied to the similarities is `min(exp(logit_scale), 100)`, as
    in CLIP. A layer (not a `keras.losses.Loss`) so that the temperature is a
    trainable weight of the model that owns it.

    Args:
        initial_temperature: float. Starting temperature `T`
            (`logit_scale = log(1 / T)`).
        max_logit_scale: float. Upper clip of `exp(logit_scale)`.
        **kwargs: base layer arguments.

    Call arguments:
        image_embeddings: tensor `[B, D]`.
        text_embeddings: tensor `[B, D]`.

    Returns:
        Scalar loss.

    Example:

    >>> loss = ContrastiveLoss()
    >>> round(float(loss.scale), 2)
    14.29

    Reference:
        Radford et al., ICML 2021.
    """

    def __init__(self, initial_temperature=0.07, max_logit_scale=100.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(initial_temperature, (int, float)) or not (
            initial_temperature > 0
        ):
            raise ValueError(
                "`initial_temperature` must be a positive float; received "
                f"{initial_temperature!r}."
            )
        if not isinstance(max_logit_scale, (int, float)) or max_logit_scale <= 0:
            raise ValueError(
                "`max_logit_scale` must be a positive float; received "
                f"{max_logit_scale!r}."
            )
        self.initial_temperature = float(initial_temperature)
        self.max_logit_scale = float(max_logit_scale)
        self.logit_scale = self.add_weight(
            name="logit_scale",
            shape=(),
            initializer=keras.initializers.Constant(
                math.log(1.0 / self.initial_temperature)
            ),
            dtype="float32",
            autocast=False,
        )

    @property
    def scale(self):
        """The multiplier in use: `min(exp(logit_scale), max_logit_scale)`."""
        return ops.minimum(ops.exp(self.logit_scale), self.max_logit_scale)

    def call(
        self,
        image_embeddings,
        text_embeddings,
        all_image_embeddings=None,
        all_text_embeddings=None,
        offset=0,
    ):
        return contrastive_loss(
            image_embeddings,
            text_embeddings,
            self.scale,
            all_image_embeddings,
            all_text_embeddings,
            offset,
        )

    def compute_output_shape(self, image_embeddings_shape, text_embeddings_shape):
        return ()

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial_temperature": self.initial_temperature,
                "max_logit_scale": self.max_logit_scale,
            }
        )
        return config
