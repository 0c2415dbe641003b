"""Independent NumPy implementations of the formulas the suite computes.

Written from the papers' equations, in float64, without any project code.
"""

import numpy as np


def softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def attention(query, key, value, mask=None):
    """softmax(Q K^T / sqrt(d_k)) V with masked keys at weight 0."""
    query, key, value = (np.asarray(t, dtype=np.float64) for t in (query, key, value))
    scores = query @ np.swapaxes(key, -1, -2) / np.sqrt(query.shape[-1])
    if mask is None:
        weights = softmax(scores)
    else:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), scores.shape)
        scores = np.where(mask, scores, -np.inf)
        row_max = np.where(
            mask.any(-1, keepdims=True), scores.max(-1, keepdims=True), 0
        )
        e = np.where(mask, np.exp(scores - row_max), 0.0)
        total = e.sum(-1, keepdims=True)
        weights = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return weights @ value, weights


def layer_norm(x, gamma, beta, epsilon):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def dense(x, kernel, bias=None):
    out = np.asarray(x, np.float64) @ np.asarray(kernel, np.float64)
    return out if bias is None else out + bias


def cross_modal_attention(
    query,
    context,
    weights,
    num_heads,
    key_dim,
    value_dim,
    use_residual=True,
    use_layer_norm=True,
    epsilon=1e-6,
    query_mask=None,
    context_mask=None,
):
    """Multi-head cross attention from the named weights of the layer."""
    w = weights
    b, lq, _ = query.shape
    lk = context.shape[1]
    q = dense(query, w["query/kernel"], w["query/bias"]).reshape(
        b, lq, num_heads, key_dim
    )
    k = dense(context, w["key/kernel"], w["key/bias"]).reshape(
        b, lk, num_heads, key_dim
    )
    v = dense(context, w["value/kernel"], w["value/bias"]).reshape(
        b, lk, num_heads, value_dim
    )
    q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))
    mask = np.ones((b, 1, lq, lk), dtype=bool)
    if context_mask is not None:
        mask &= np.asarray(context_mask, bool)[:, None, None, :]
    if query_mask is not None:
        mask &= np.asarray(query_mask, bool)[:, None, :, None]
    out, scores = attention(q, k, v, mask)
    out = out.transpose(0, 2, 1, 3).reshape(b, lq, num_heads * value_dim)
    out = dense(out, w["output/kernel"], w["output/bias"])
    if use_residual:
        out = out + query
    if use_layer_norm:
        out = layer_norm(out, w["layer_norm/gamma"], w["layer_norm/beta"], epsilon)
    return out, scores


def gcn(h, adjacency, kernel, bias=None, activation=None):
    """activation(D^-1/2 (A + I) D^-1/2 H W + b), A [N, N] or [B, N, N]."""
    a = np.asarray(adjacency, np.float64) + np.eye(adjacency.shape[-1])
    degree = a.sum(-1)
    d = np.zeros(a.shape)
    idx = np.arange(a.shape[-1])
    d[..., idx, idx] = degree**-0.5
    out = d @ a @ d @ (np.asarray(h, np.float64) @ kernel)
    if bias is not None:
        out = out + bias
    return activation(out) if activation else out


def gat(
    h,
    adjacency,
    kernel,
    attention_source,
    attention_target,
    bias,
    negative_slope=0.2,
    concat_heads=True,
):
    """GAT with explicit loops over heads, nodes and neighbours."""
    h = np.asarray(h, np.float64)
    batch, n, _ = h.shape
    heads, units = attention_source.shape
    adjacency = np.asarray(adjacency)
    if adjacency.ndim == 2:
        adjacency = np.broadcast_to(adjacency, (batch, n, n))
    out = np.zeros((batch, heads, n, units))
    alphas = np.zeros((batch, heads, n, n))
    for bi in range(batch):
        for hd in range(heads):
            z = h[bi] @ kernel[:, hd, :]
            for i in range(n):
                neighbours = [j for j in range(n) if j == i or adjacency[bi, i, j] != 0]
                e = []
                for j in neighbours:
                    s = attention_target[hd] @ z[i] + attention_source[hd] @ z[j]
                    e.append(s if s > 0 else negative_slope * s)
                a = softmax(np.array(e))
                for weight, j in zip(a, neighbours, strict=True):
                    alphas[bi, hd, i, j] = weight
                    out[bi, hd, i] += weight * z[j]
    if concat_heads:
        result = out.transpose(0, 2, 1, 3).reshape(batch, n, heads * units)
    else:
        result = out.mean(axis=1)
    return result + bias, alphas


def info_nce(image, text, scale):
    image = np.asarray(image, np.float64)
    text = np.asarray(text, np.float64)
    image = image / np.linalg.norm(image, axis=1, keepdims=True)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    logits = scale * image @ text.T
    n = logits.shape[0]

    def cross_entropy(lg):
        log_probs = (
            lg
            - np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1, keepdims=True))
            - lg.max(1, keepdims=True)
        )
        return -log_probs[np.arange(n), np.arange(n)].mean()

    return 0.5 * (cross_entropy(logits) + cross_entropy(logits.T))


def vse_triplet(image, text, margin, max_violation):
    """Loops over anchors and negatives, as in the VSE++ paper."""
    image = np.asarray(image, np.float64)
    text = np.asarray(text, np.float64)
    image = image / np.linalg.norm(image, axis=1, keepdims=True)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    s = image @ text.T
    n = s.shape[0]
    total = 0.0
    for i in range(n):
        costs_text = [max(0.0, margin + s[i, j] - s[i, i]) for j in range(n) if j != i]
        costs_image = [max(0.0, margin + s[j, i] - s[i, i]) for j in range(n) if j != i]
        if max_violation:
            total += max(costs_text, default=0.0) + max(costs_image, default=0.0)
        else:
            total += sum(costs_text) + sum(costs_image)
    return total / n


def recall_by_sorting(similarity, text_to_image, ks):
    """Recall@K via full stable argsorts (the plain, memory-hungry way)."""
    similarity = np.asarray(similarity, np.float64)
    num_images, num_texts = similarity.shape
    t2i_ranks = []
    for t in range(num_texts):
        order = np.argsort(-similarity[:, t], kind="stable")
        t2i_ranks.append(int(np.flatnonzero(order == text_to_image[t])[0]))
    i2t_ranks = []
    for i in range(num_images):
        order = np.argsort(-similarity[i], kind="stable")
        positions = [
            int(np.flatnonzero(order == t)[0])
            for t in range(num_texts)
            if text_to_image[t] == i
        ]
        i2t_ranks.append(min(positions))
    out = {}
    for name, ranks in (("i2t", np.array(i2t_ranks)), ("t2i", np.array(t2i_ranks))):
        for k in ks:
            out[f"{name}_r{k}"] = 100.0 * np.mean(ranks < k)
        out[f"{name}_medr"] = np.floor(np.median(ranks)) + 1
    return out
