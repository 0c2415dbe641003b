"""Merging the top-k answers of a gallery's index shards."""


def merge_top_k(answers, k):
    """The best `k` `(id, score)` pairs of several indexes' answers (each its
    own top-k over a disjoint part of a gallery): the top-k of the whole
    gallery, best first."""
    merged = [pair for answer in answers for pair in answer]
    merged.sort(key=lambda pair: -pair[1])
    return merged[:k]
