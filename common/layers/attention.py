"""Scaled dot-product attention, the one attention kernel of the suite."""

from keras import ops

# Scores are float32. A finite fill value (not -inf) makes a fully masked row
# softmax to a uniform row, zeroed afterwards, instead of NaN, and keeps the
# gradients through `where` finite.
_MASKED_SCORE = -1.0e9


def _static_dim(tensor, axis):
    shape = tensor.shape
    return None if shape is None else shape[axis]


def scaled_dot_product_attention(query, key, value, mask=None):
    """Computes `softmax(Q K^T / sqrt(d_k)) V` over the last two axes.

    Leading (batch and head) axes broadcast against each other. The softmax is
    computed in float32 whatever the input dtype, and the weights are cast back
    to `value`'s dtype.

    Args:
        query: tensor `[..., Lq, d_k]`.
        key: tensor `[..., Lk, d_k]`.
        value: tensor `[..., Lk, d_v]`.
        mask: optional boolean tensor broadcastable to `[..., Lq, Lk]`; `True`
            marks the keys a query may attend to. Masked keys get a weight of
            exactly 0; a query row with no key to attend to gets all-zero
            weights and a zero output.

    Returns:
        A tuple `(output, weights)`: `output` `[..., Lq, d_v]` and `weights`
        `[..., Lq, Lk]`.

    Example:

    >>> import numpy as np
    >>> q = np.random.rand(2, 3, 4).astype("float32")
    >>> k = np.random.rand(2, 5, 4).astype("float32")
    >>> v = np.random.rand(2, 5, 6).astype("float32")
    >>> out, w = scaled_dot_product_attention(q, k, v)
    >>> tuple(out.shape), tuple(w.shape)
    ((2, 3, 6), (2, 3, 5))

    Reference:
        Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
    """
    weights = attention_weights(query, key, mask=mask)
    value = ops.convert_to_tensor(value)
    key_len, value_len = _static_dim(weights, -1), _static_dim(value, -2)
    if key_len is not None and value_len is not None and key_len != value_len:
        raise ValueError(
            "`key` and `value` must have the same length Lk; received "
            f"{key_len} keys and value shape {tuple(value.shape)}."
        )
    weights = ops.cast(weights, value.dtype)
    return ops.matmul(weights, value), weights


def attention_weights(query, key, mask=None):
    """The attention weights `softmax(Q K^T / sqrt(d_k))`, `[..., Lq, Lk]`.

    Same arguments and masking rules as `scaled_dot_product_attention`; the
    weights are returned in float32.
    """
    query = ops.convert_to_tensor(query)
    key = ops.convert_to_tensor(key)
    for name, tensor in (("query", query), ("key", key)):
        if len(tensor.shape) < 2:
            raise ValueError(
                f"`{name}` must have rank >= 2 ([..., length, dim]); "
                f"received shape {tuple(tensor.shape)}."
            )
    d_k, key_d = _static_dim(query, -1), _static_dim(key, -1)
    if d_k is not None and key_d is not None and d_k != key_d:
        raise ValueError(
            "`query` and `key` must have the same last dimension d_k; received "
            f"query shape {tuple(query.shape)} and key shape {tuple(key.shape)}."
        )
    depth = ops.cast(ops.shape(query)[-1], "float32")
    # [..., Lq, Lk]
    scores = ops.matmul(
        ops.cast(query, "float32"), ops.swapaxes(ops.cast(key, "float32"), -1, -2)
    )
    scores = scores / ops.sqrt(depth)
    if mask is None:
        return ops.softmax(scores, axis=-1)
    mask = ops.cast(mask, "bool")
    scores = ops.where(mask, scores, _MASKED_SCORE)
    weights = ops.softmax(scores, axis=-1)
    return ops.where(mask, weights, ops.zeros_like(weights))
