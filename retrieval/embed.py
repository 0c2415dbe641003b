"""Embedding images and captions in batches, and Recall@K with re-ranking."""

import numpy as np
import tensorflow as tf

from common.metrics import retrieval_metrics
from retrieval.data import flatten_captions, image_dataset


def _compiled(model, name):
    """`model.<name>` as a cached `tf.function` (eager VGG16 calls are slow)."""
    cache = model.__dict__.setdefault("_compiled_encoders", {})
    if name not in cache:
        method = getattr(model, name)
        cache[name] = tf.function(
            lambda x: method(x, training=False), reduce_retracing=True
        )
    return cache[name]


def embed_images(model, image_paths, image_size, batch_size, keep_regions=False):
    embeddings, regions = [], []
    encode = _compiled(model, "encode_images")
    for images in image_dataset(image_paths, image_size, batch_size):
        out = encode(images)
        embeddings.append(out["embeddings"].numpy())
        if keep_regions:
            regions.append(out["regions"].numpy())
    embeddings = np.concatenate(embeddings)
    return (embeddings, np.concatenate(regions)) if keep_regions else embeddings


def embed_texts(model, texts, batch_size, keep_tokens=False):
    embeddings, tokens, masks = [], [], []
    encode = _compiled(model, "encode_texts")
    for start in range(0, len(texts), batch_size):
        out = encode(tf.constant(texts[start : start + batch_size]))
        embeddings.append(out["embeddings"].numpy())
        if keep_tokens:
            tokens.append(out["tokens"].numpy())
            masks.append(out["mask"].numpy())
    embeddings = np.concatenate(embeddings)
    if keep_tokens:
        return embeddings, np.concatenate(tokens), np.concatenate(masks)
    return embeddings


def _pair_scores(model, regions, tokens, masks, image_index, text_index, batch_size):
    scores = np.empty(len(image_index), dtype=np.float32)
    for start in range(0, len(image_index), batch_size):
        stop = start + batch_size
        scores[start:stop] = model.match_scores(
            regions[image_index[start:stop]],
            tokens[text_index[start:stop]],
            masks[text_index[start:stop]],
        ).numpy()
    return scores


def rerank_similarity(
    model, similarity, regions, tokens, masks, top_k, axis, batch_size
):
    """Re-scores each query's top-k candidates with the matching head.

    `axis=0`: queries are texts (columns), candidates images; `axis=1`: queries
    are images, candidates texts. Candidates get `2 + similarity + match`
    (so they stay above all others) and keep their global order otherwise.
    """
    reranked = similarity.copy()
    k = min(top_k, similarity.shape[axis])
    if axis == 0:
        candidates = np.argpartition(-similarity, k - 1, axis=0)[:k]  # [k, texts]
        image_index = candidates.T.reshape(-1)
        text_index = np.repeat(np.arange(similarity.shape[1]), k)
    else:
        candidates = np.argpartition(-similarity, k - 1, axis=1)[:, :k]  # [images, k]
        image_index = np.repeat(np.arange(similarity.shape[0]), k)
        text_index = candidates.reshape(-1)
    match = _pair_scores(
        model, regions, tokens, masks, image_index, text_index, batch_size
    )
    reranked[image_index, text_index] = (
        2.0 + similarity[image_index, text_index] + match
    )
    return reranked


def evaluate_embeddings(
    model, image_paths, captions, image_size, batch_size, rerank_top_k=0
):
    """Recall@K of the dual encoder, and of cross-attention re-ranking."""
    texts, text_to_image = flatten_captions(captions)
    keep = rerank_top_k > 0
    image_out = embed_images(model, image_paths, image_size, batch_size, keep)
    text_out = embed_texts(model, texts, batch_size, keep)
    if keep:
        (image_embeddings, regions), (text_embeddings, tokens, masks) = (
            image_out,
            text_out,
        )
    else:
        image_embeddings, text_embeddings = image_out, text_out
    similarity = image_embeddings @ text_embeddings.T
    metrics = retrieval_metrics(similarity, text_to_image)
    if keep:
        by_text = rerank_similarity(
            model, similarity, regions, tokens, masks, rerank_top_k, 0, batch_size
        )
        by_image = rerank_similarity(
            model, similarity, regions, tokens, masks, rerank_top_k, 1, batch_size
        )
        t2i = retrieval_metrics(by_text, text_to_image)
        i2t = retrieval_metrics(by_image, text_to_image)
        rerank = {k: v for k, v in i2t.items() if k.startswith("i2t")}
        rerank.update({k: v for k, v in t2i.items() if k.startswith("t2i")})
        rerank["rsum"] = sum(
            v
            for k, v in rerank.items()
            if "_r" in k and not k.endswith(("medr", "meanr"))
        )
        rerank["top_k"] = int(rerank_top_k)
        metrics["rerank"] = rerank
    metrics["num_images"] = len(image_paths)
    metrics["num_texts"] = len(texts)
    return metrics
