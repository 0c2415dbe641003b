"""VSE++ hinge triplet loss with hardest in-batch negatives."""

from keras import ops

from common.losses.contrastive import _check_pair, _normalize


def hard_negative_triplet_loss(
    image_embeddings, text_embeddings, margin=0.2, max_violation=True
):
    """Bidirectional hinge triplet loss on cosine similarities (VSE++).

    With `s_ij` the cosine similarity of image `i` and text `j` (row `i` of
    both inputs is a matching pair), the caption-retrieval cost of image `i`
    against text `j != i` is `max(0, margin + s_ij - s_ii)`, and the
    image-retrieval cost of text `j` against image `i != j` is
    `max(0, margin + s_ij - s_jj)`. With `max_violation` only the hardest
    negative of each anchor counts (VSE++); otherwise all negatives are
    summed (VSE0). Both directions are added; the result is the mean over the
    batch's anchors.

    Args:
        image_embeddings: tensor `[B, D]` (normalised here).
        text_embeddings: tensor `[B, D]` (normalised here).
        margin: float. Hinge margin.
        max_violation: bool. Hardest negative only.

    Returns:
        Scalar loss.

    Example:

    >>> import numpy as np
    >>> e = np.eye(3, dtype="float32")
    >>> float(hard_negative_triplet_loss(e, e, margin=0.2))
    0.0

    Reference:
        Faghri et al., "VSE++: Improving Visual-Semantic Embeddings with Hard
        Negatives", BMVC 2018.
    """
    if not isinstance(margin, (int, float)) or margin < 0:
        raise ValueError(f"`margin` must be a non-negative float; received {margin!r}.")
    image_embeddings = ops.convert_to_tensor(image_embeddings)
    text_embeddings = ops.convert_to_tensor(text_embeddings)
    _check_pair(image_embeddings, text_embeddings)
    images, texts = _normalize(image_embeddings), _normalize(text_embeddings)
    # [B_images, B_texts]
    scores = ops.matmul(images, ops.transpose(texts))
    positives = ops.diagonal(scores)
    cost_text = ops.relu(margin + scores - positives[:, None])
    cost_image = ops.relu(margin + scores - positives[None, :])
    off_diagonal = 1.0 - ops.eye(ops.shape(scores)[0], dtype="float32")
    cost_text = cost_text * off_diagonal
    cost_image = cost_image * off_diagonal
    if max_violation:
        per_image = ops.max(cost_text, axis=1)
        per_text = ops.max(cost_image, axis=0)
    else:
        per_image = ops.sum(cost_text, axis=1)
        per_text = ops.sum(cost_image, axis=0)
    return ops.mean(per_image) + ops.mean(per_text)
