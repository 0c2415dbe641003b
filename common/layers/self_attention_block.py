"""Pre-norm transformer encoder block on the suite's attention."""

import keras

from common.layers.cross_modal_attention import CrossModalAttention
from common.layers.validation import (
    check_positive_int,
    check_rank,
    check_rate,
)


@keras.saving.register_keras_serializable(package="common")
class SelfAttentionBlock(keras.layers.Layer):
    """Pre-norm transformer encoder block: self-attention, then an MLP.

    `x = x + Dropout(Attention(LN(x), LN(x)))`, then
    `x = x + Dropout(MLP(LN(x)))`, where the attention is `CrossModalAttention`
    with the tokens attending to themselves (no residual or norm inside it:
    the block adds its own).

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head's query and key projections.
        hidden_dim: int. Width of the MLP's hidden layer.
        dropout_rate: float. Dropout on the attention weights and on both
            residual branches.
        activation: activation of the MLP's hidden layer.
        layer_norm_epsilon: float. Epsilon of both LayerNorms.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: tensor `[B, L, D]`.
        padding_mask: optional boolean `[B, L]`; `False` marks padding tokens,
            which no token attends to.
        training: bool. Enables dropout.

    Returns:
        `[B, L, D]`.

    Example:

    >>> import numpy as np
    >>> block = SelfAttentionBlock(num_heads=2, key_dim=8, hidden_dim=32)
    >>> tuple(block(np.zeros((2, 5, 16), "float32")).shape)
    (2, 5, 16)

    Reference:
        Xiong et al., "On Layer Normalization in the Transformer
        Architecture", ICML 2020 (pre-norm); Vaswani et al., 2017.
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        hidden_dim,
        dropout_rate=0.0,
        activation="gelu",
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.key_dim = check_positive_int("key_dim", key_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.supports_masking = True
        policy = self.dtype_policy
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="attention_norm"
        )
        self.attention = CrossModalAttention(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            dropout_rate=self.dropout_rate,
            use_residual=False,
            use_layer_norm=False,
            dtype=policy,
            name="attention",
        )
        self.attention_dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=policy, name="attention_output_dropout"
        )
        self.mlp_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="mlp_norm"
        )
        self.mlp_hidden = keras.layers.Dense(
            self.hidden_dim,
            activation=self.activation,
            dtype=policy,
            name="mlp_hidden",
        )
        self.mlp_output = None  # width = input features, created in build()
        self.mlp_dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=policy, name="mlp_dropout"
        )

    def build(self, inputs_shape):
        check_rank("inputs", inputs_shape, {3})
        self.attention_norm.build(inputs_shape)
        self.attention.build(inputs_shape, inputs_shape)
        self.mlp_norm.build(inputs_shape)
        self.mlp_hidden.build(inputs_shape)
        self.mlp_output = keras.layers.Dense(
            inputs_shape[-1], dtype=self.dtype_policy, name="mlp_output"
        )
        self.mlp_output.build(tuple(inputs_shape[:-1]) + (self.hidden_dim,))

    def call(self, inputs, padding_mask=None, training=None):
        normed = self.attention_norm(inputs)
        attended = self.attention(
            normed,
            normed,
            query_mask=padding_mask,
            context_mask=padding_mask,
            training=training,
        )
        x = inputs + self.attention_dropout(attended, training=training)
        hidden = self.mlp_hidden(self.mlp_norm(x))
        return x + self.mlp_dropout(self.mlp_output(hidden), training=training)

    def compute_mask(self, inputs, padding_mask=None):
        return padding_mask

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "hidden_dim": self.hidden_dim,
                "dropout_rate": self.dropout_rate,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
