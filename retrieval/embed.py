"""Embedding images and captions in batches, and Recall@K with re-ranking."""

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common.metrics import retrieval_metrics
from retrieval.grounding import attention_maps, pointing_game
from retrieval.pipeline import flatten_captions, image_dataset


def _compiled(model, name):
    """`model.<name>` as a cached `tf.function` (eager VGG16 calls are slow)."""
    cache = model.__dict__.setdefault("_compiled_encoders", {})
    if name not in cache:
        method = getattr(model, name)
        cache[name] = tf.function(
            lambda x: method(x, training=False), reduce_retracing=True
        )
    return cache[name]


def _progress(total, what, shown):
    """A tqdm bar of `total` items when `shown` and stderr is a terminal."""
    return tqdm(
        total=total, desc=what, unit=what.split()[-1], disable=None if shown else True
    )


def embed_images(
    model, image_paths, image_size, batch_size, keep_regions=False, progress=False
):
    embeddings, regions = [], []
    encode = _compiled(model, "encode_images")
    bar = _progress(len(image_paths), "Embedding images", progress)
    for images in image_dataset(image_paths, image_size, batch_size):
        out = encode(images)
        bar.update(int(images.shape[0]))
        embeddings.append(out["embeddings"].numpy())
        if keep_regions:
            regions.append(out["regions"].numpy())
    bar.close()
    embeddings = np.concatenate(embeddings)
    return (embeddings, np.concatenate(regions)) if keep_regions else embeddings


def embed_texts(model, texts, batch_size, keep_tokens=False, progress=False):
    embeddings, tokens, masks = [], [], []
    encode = _compiled(model, "encode_texts")
    bar = _progress(len(texts), "Embedding captions", progress)
    for start in range(0, len(texts), batch_size):
        out = encode(tf.constant(texts[start : start + batch_size]))
        bar.update(len(texts[start : start + batch_size]))
        embeddings.append(out["embeddings"].numpy())
        if keep_tokens:
            tokens.append(out["tokens"].numpy())
            masks.append(out["mask"].numpy())
    bar.close()
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


# Match-probability weights tried on the validation split (0: the dual
# encoder alone, so the choice is never below it there).
RERANK_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def fuse_scores(similarity, match, weight):
    """The re-ranking score of a candidate: its dual-encoder cosine plus
    `weight` times its match probability."""
    return similarity + weight * match


def candidate_pairs(similarity, top_k, axis):
    """`(image_index, text_index)` of each query's top-k candidates by
    similarity: `axis=0` queries are captions (columns), candidates images;
    `axis=1` queries are images, candidates captions."""
    k = min(top_k, similarity.shape[axis])
    if axis == 0:
        candidates = np.argpartition(-similarity, k - 1, axis=0)[:k]  # [k, texts]
        return candidates.T.reshape(-1), np.repeat(np.arange(similarity.shape[1]), k)
    candidates = np.argpartition(-similarity, k - 1, axis=1)[:, :k]  # [images, k]
    return np.repeat(np.arange(similarity.shape[0]), k), candidates.reshape(-1)


def rerank(similarity, image_index, text_index, match, weight):
    """`similarity` with the candidates' scores replaced by `3 +
    fuse_scores(...)`: they stay above every other (cosines are <= 1) and
    are ordered by the fused score."""
    reranked = similarity.copy()
    reranked[image_index, text_index] = 3.0 + fuse_scores(
        similarity[image_index, text_index], match, weight
    )
    return reranked


def rerank_similarity(
    model, similarity, regions, tokens, masks, top_k, axis, batch_size, weight=1.0
):
    """Re-scores each query's top-k candidates with the matching head
    (`candidate_pairs`, then `rerank` with the fused score)."""
    image_index, text_index = candidate_pairs(similarity, top_k, axis)
    match = _pair_scores(
        model, regions, tokens, masks, image_index, text_index, batch_size
    )
    return rerank(similarity, image_index, text_index, match, weight)


def _reranked_metrics(by_text, by_image, text_to_image, top_k, weight):
    t2i = retrieval_metrics(by_text, text_to_image)
    i2t = retrieval_metrics(by_image, text_to_image)
    metrics = {k: v for k, v in i2t.items() if k.startswith("i2t")}
    metrics.update({k: v for k, v in t2i.items() if k.startswith("t2i")})
    metrics["rsum"] = sum(
        v for k, v in metrics.items() if "_r" in k and not k.endswith(("medr", "meanr"))
    )
    metrics["top_k"] = int(top_k)
    metrics["weight"] = float(weight)
    return metrics


def _embed_all(model, image_paths, captions, image_size, batch_size, keep, progress):
    texts, text_to_image = flatten_captions(captions)
    image_out = embed_images(model, image_paths, image_size, batch_size, keep, progress)
    text_out = embed_texts(model, texts, batch_size, keep, progress)
    return texts, text_to_image, image_out, text_out


def evaluate_embeddings(
    model,
    image_paths,
    captions,
    image_size,
    batch_size,
    rerank_top_k=0,
    rerank_weights=(1.0,),
    boxes=None,
    progress=False,
):
    """Recall@K of the dual encoder, and of cross-attention re-ranking
    (with `progress`, bars of the embedding on a terminal).

    With `boxes` (one `[x0, y0, x1, y1]` or `None` per image), also the
    pointing game of the matching head's attention over the captions of the
    images that have a box (`retrieval.grounding`).

    With several `rerank_weights`, the match probabilities are computed once
    and each weight's re-ranked Recall@K is in `metrics["rerank_by_weight"]`;
    `metrics["rerank"]` is the one with the best rsum (the smallest weight
    among ties).
    """
    has_boxes = boxes is not None and any(b is not None for b in boxes)
    keep = rerank_top_k > 0 or has_boxes
    texts, text_to_image, image_out, text_out = _embed_all(
        model, image_paths, captions, image_size, batch_size, keep, progress
    )
    if keep:
        (image_embeddings, regions), (text_embeddings, tokens, masks) = (
            image_out,
            text_out,
        )
    else:
        image_embeddings, text_embeddings = image_out, text_out
    similarity = image_embeddings @ text_embeddings.T
    metrics = retrieval_metrics(similarity, text_to_image)
    if has_boxes:
        boxed = [j for j, i in enumerate(text_to_image) if boxes[i] is not None]
        images_of = np.asarray(text_to_image)[boxed]
        maps = attention_maps(
            model, regions[images_of], [texts[j] for j in boxed], batch_size
        )
        metrics.update(
            pointing_game(
                maps, np.asarray([boxes[i] for i in images_of]), *model.grid_shape
            )
        )
    if rerank_top_k > 0:
        pairs = [candidate_pairs(similarity, rerank_top_k, axis) for axis in (0, 1)]
        matches = [
            _pair_scores(model, regions, tokens, masks, i, t, batch_size)
            for i, t in pairs
        ]
        by_weight = []
        for weight in rerank_weights:
            by_text, by_image = (
                rerank(similarity, i, t, match, weight)
                for (i, t), match in zip(pairs, matches, strict=True)
            )
            by_weight.append(
                _reranked_metrics(
                    by_text, by_image, text_to_image, rerank_top_k, weight
                )
            )
        metrics["rerank"] = max(by_weight, key=lambda m: (m["rsum"], -m["weight"]))
        if len(by_weight) > 1:
            metrics["rerank_by_weight"] = by_weight
    metrics["num_images"] = len(image_paths)
    metrics["num_texts"] = len(texts)
    return metrics
