"""Recall@K and median rank for cross-modal retrieval, as papers report them."""

import numpy as np

DEFAULT_CHUNK_SIZE = 512


def _check_inputs(similarity, text_to_image, ks):
    similarity = np.asarray(similarity)
    if similarity.ndim != 2:
        raise ValueError(
            "`similarity` must be [num_images, num_texts]; received shape "
            f"{similarity.shape}."
        )
    if not np.issubdtype(similarity.dtype, np.floating):
        similarity = similarity.astype("float32")
    num_images, num_texts = similarity.shape
    text_to_image = np.asarray(text_to_image)
    if text_to_image.shape != (num_texts,):
        raise ValueError(
            f"`text_to_image` must have shape ({num_texts},), one image index "
            f"per text; received shape {text_to_image.shape}."
        )
    if not np.issubdtype(text_to_image.dtype, np.integer):
        raise ValueError(
            f"`text_to_image` must hold integer indices; received dtype "
            f"{text_to_image.dtype}."
        )
    if num_texts and (text_to_image.min() < 0 or text_to_image.max() >= num_images):
        raise ValueError(
            f"`text_to_image` values must be in [0, {num_images}); received "
            f"min {text_to_image.min()} and max {text_to_image.max()}."
        )
    texts_per_image = np.bincount(text_to_image, minlength=num_images)
    if num_images == 0 or num_texts == 0 or (texts_per_image == 0).any():
        missing = np.flatnonzero(texts_per_image == 0)[:5].tolist()
        raise ValueError(
            "Every image needs at least one text; images without a text: "
            f"{missing} (of {int((texts_per_image == 0).sum())}); similarity "
            f"shape {similarity.shape}."
        )
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"`ks` must be positive integers; received {ks!r}.")
    if not np.isfinite(similarity).all():
        raise ValueError("`similarity` contains NaN or infinite values.")
    return similarity, text_to_image.astype(np.int64), ks


def text_to_image_ranks(similarity, text_to_image, chunk_size=DEFAULT_CHUNK_SIZE):
    """0-based rank of each text's image among all images.

    A rank counts the images scored strictly higher, plus those tied with it
    at a lower index (the order of a stable descending sort).
    """
    num_images, num_texts = similarity.shape
    image_index = np.arange(num_images)[:, None]
    ranks = np.empty(num_texts, dtype=np.int64)
    for start in range(0, num_texts, chunk_size):
        stop = min(start + chunk_size, num_texts)
        # [num_images, chunk]
        block = similarity[:, start:stop]
        targets = text_to_image[start:stop]
        positive = block[targets, np.arange(stop - start)]
        ahead = (block > positive) | ((block == positive) & (image_index < targets))
        ranks[start:stop] = ahead.sum(axis=0)
    return ranks


def image_to_text_ranks(similarity, text_to_image, chunk_size=DEFAULT_CHUNK_SIZE):
    """0-based rank of each image's best-ranked matching text among all texts."""
    num_images, num_texts = similarity.shape
    text_index = np.arange(num_texts)[None, :]
    ranks = np.empty(num_images, dtype=np.int64)
    for start in range(0, num_images, chunk_size):
        stop = min(start + chunk_size, num_images)
        # [chunk, num_texts]
        block = similarity[start:stop]
        is_match = text_to_image[None, :] == np.arange(start, stop)[:, None]
        best = np.where(is_match, block, -np.inf).max(axis=1, keepdims=True)
        # The first matching text holding the best score sets the tie-break.
        first_best = np.argmax(is_match & (block == best), axis=1)[:, None]
        ahead = (block > best) | ((block == best) & (text_index < first_best))
        ranks[start:stop] = ahead.sum(axis=1)
    return ranks


def retrieval_metrics(similarity, text_to_image, ks=(1, 5, 10)):
    """Recall@K both ways, median rank and rsum for image-text retrieval.

    Image-to-text (`i2t`): an image is found at K when any of its texts ranks
    within the top K of all texts. Text-to-image (`t2i`): a text is found at K
    when its image ranks within the top K of all images. Ties are broken by
    index (a stable descending sort). Work is done in chunks, so memory beyond
    the similarity matrix stays at one chunk of comparisons.

    Args:
        similarity: array `[num_images, num_texts]`, higher = more similar.
        text_to_image: int array `[num_texts]`, the index of each text's image
            (several texts per image; every image needs at least one).
        ks: the K values.

    Returns:
        A dict with `i2t_r{K}` and `t2i_r{K}` for each K (percent),
        `i2t_medr`, `t2i_medr` (`floor(median(rank)) + 1`, 1-based, as
        VSE++/SCAN compute it), `i2t_meanr`, `t2i_meanr`, and `rsum` (the sum
        of all the recalls).

    Example:

    >>> import numpy as np
    >>> sim = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.7]])
    >>> retrieval_metrics(sim, [0, 0, 1], ks=(1,))["t2i_r1"]
    100.0

    Reference:
        Karpathy and Fei-Fei, "Deep Visual-Semantic Alignments for Generating
        Image Descriptions", CVPR 2015; Faghri et al., VSE++, BMVC 2018.
    """
    similarity, text_to_image, ks = _check_inputs(similarity, text_to_image, ks)
    directions = {
        "i2t": image_to_text_ranks(similarity, text_to_image),
        "t2i": text_to_image_ranks(similarity, text_to_image),
    }
    metrics = {}
    for direction, ranks in directions.items():
        for k in ks:
            metrics[f"{direction}_r{k}"] = float(100.0 * np.mean(ranks < k))
    for direction, ranks in directions.items():
        metrics[f"{direction}_medr"] = float(np.floor(np.median(ranks)) + 1)
        metrics[f"{direction}_meanr"] = float(np.mean(ranks) + 1)
    metrics["rsum"] = float(sum(metrics[f"{d}_r{k}"] for d in directions for k in ks))
    return metrics
