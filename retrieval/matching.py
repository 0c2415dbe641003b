"""Image-text matching (ITM): a fusion encoder over a caption's tokens and an
image's regions, a match classifier, its loss and hard-negative sampling.

The caption's tokens attend to the image regions through
`common.layers.CrossModalAttention`, then to each other and a feed-forward
(`SelfAttentionBlock`), `num_layers` times; the masked mean of the fused tokens
goes to a one-logit classifier: does this caption describe this image? It is
trained with binary cross-entropy on the positive pairs and on hard
negatives sampled from the dual encoder's similarity (a negative image for
each caption and a negative caption for each image), as ALBEF and BLIP do.
"""

import keras
from keras import ops

from common.layers import CrossModalAttention, SelfAttentionBlock

# Cosines at least this close to 1 are the same image or the same caption:
# such pairs are never negatives.
SAME_ITEM_COSINE = 0.999
MASKED = -1e9


@keras.saving.register_keras_serializable(package="retrieval")
class ImageTextMatchingHead(keras.layers.Layer):
    """Fuses a caption with an image and scores the pair.

    Args:
        num_heads: int. Attention heads.
        key_dim: int. Size per head.
        hidden_dim: int. Feed-forward width.
        num_layers: int. Cross-attention + self-attention blocks.
        dropout_rate: float. Dropout in training.
        **kwargs: base layer arguments.

    Call arguments:
        regions: `[B, R, D]` image region features.
        tokens: `[B, L, D]` caption token features (paired row by row).
        mask: boolean `[B, L]`, `False` for padding.
        return_attention_scores: bool. Also return the first block's
            token-to-region attention `[B, num_heads, L, R]`.
        training: bool.

    Returns:
        Match logits `[B]` (float32), or `(logits, attention)`.

    Example:

    >>> import numpy as np
    >>> head = ImageTextMatchingHead(num_heads=2, key_dim=8, hidden_dim=32)
    >>> regions = np.random.rand(3, 16, 16).astype("float32")
    >>> tokens = np.random.rand(3, 5, 16).astype("float32")
    >>> tuple(head(regions, tokens, np.ones((3, 5), bool)).shape)
    (3,)

    Reference:
        Li et al., "Align before Fuse" (ALBEF), NeurIPS 2021; Li et al., BLIP,
        ICML 2022.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        hidden_dim,
        num_layers=1,
        dropout_rate=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.hidden_dim = int(hidden_dim)
        self.num_layers = int(num_layers)
        self.dropout_rate = float(dropout_rate)
        self.cross_attention = [
            CrossModalAttention(
                num_heads=self.num_heads,
                key_dim=self.key_dim,
                dropout_rate=self.dropout_rate,
                name=f"cross_attention_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.blocks = [
            SelfAttentionBlock(
                num_heads=self.num_heads,
                key_dim=self.key_dim,
                hidden_dim=self.hidden_dim,
                dropout_rate=self.dropout_rate,
                name=f"block_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.output_norm = keras.layers.LayerNormalization(
            epsilon=1e-6, name="output_norm"
        )
        self.classifier = keras.layers.Dense(1, name="classifier")

    def build(self, regions_shape, tokens_shape=None, mask_shape=None):
        tokens_shape = tuple(tokens_shape or regions_shape)
        for cross, block in zip(self.cross_attention, self.blocks, strict=True):
            cross.build(tokens_shape, tuple(regions_shape))
            block.build(tokens_shape)
        self.output_norm.build(tokens_shape)
        self.classifier.build((tokens_shape[0], tokens_shape[-1]))

    def call(self, regions, tokens, mask, return_attention_scores=False, training=None):
        x, first = tokens, None
        for cross, block in zip(self.cross_attention, self.blocks, strict=True):
            x, attention = cross(
                x,
                regions,
                query_mask=mask,
                return_attention_scores=True,
                training=training,
            )
            first = attention if first is None else first
            x = block(x, padding_mask=mask, training=training)
        x = ops.cast(self.output_norm(x), "float32")
        weights = ops.cast(mask, "float32")[..., None]
        pooled = ops.sum(x * weights, axis=1) / ops.maximum(
            ops.sum(weights, axis=1), 1.0
        )
        logits = ops.cast(self.classifier(pooled)[:, 0], "float32")
        return (logits, first) if return_attention_scores else logits

    def compute_output_shape(self, regions_shape, tokens_shape=None, mask_shape=None):
        return (regions_shape[0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers,
                "dropout_rate": self.dropout_rate,
            }
        )
        return config


def negative_logits(similarity, image_similarity, text_similarity, temperature):
    """Sampling logits of hard negatives, `(image_for_caption, text_for_image)`.

    Args:
        similarity: `[B, B]` image-text cosines (row = image, column = caption).
        image_similarity: `[B, B]` image-image cosines.
        text_similarity: `[B, B]` caption-caption cosines.
        temperature: softmax temperature; lower samples harder negatives.

    Returns:
        Two `[B, B]` logit matrices: row j of the first scores the images for
        caption j, row i of the second the captions for image i. The pair
        itself, and any pair whose image or caption is the same as the
        positive's (a false negative), get `MASKED`.
    """
    batch = ops.shape(similarity)[0]
    invalid = (
        ops.cast(ops.eye(batch), "bool")
        | (image_similarity >= SAME_ITEM_COSINE)
        | (text_similarity >= SAME_ITEM_COSINE)
    )
    scaled = similarity / temperature
    masked = ops.where(invalid, MASKED, scaled)
    return ops.transpose(masked), masked


def sample_negatives(logits, seed):
    """One index per row drawn with probabilities `softmax(row)`."""
    return ops.cast(keras.random.categorical(logits, 1, seed=seed)[:, 0], "int32")


def itm_loss(positive_logits, negative_image_logits, negative_text_logits):
    """Mean binary cross-entropy over the `3B` pairs: positives labelled 1,
    both kinds of negatives 0 (`softplus(-x)` and `softplus(x)`)."""
    total = (
        ops.sum(ops.softplus(-positive_logits))
        + ops.sum(ops.softplus(negative_image_logits))
        + ops.sum(ops.softplus(negative_text_logits))
    )
    count = 3 * ops.cast(ops.shape(positive_logits)[0], "float32")
    return total / count
