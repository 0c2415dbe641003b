"""A search SavedModel read back: its ids, vectors (decoded from int8
codes), region features, settings and the model it was built with."""

import dataclasses

import numpy as np
import tensorflow as tf

from retrieval.ann import Int8Quantizer, IvfLayout, unblocked
from retrieval.search_index import model_fingerprint


@dataclasses.dataclass
class StoredIndex:
    """What a search SavedModel holds, read back: ids (str), float32 vectors
    (decoded from int8 codes), region features or None, the gallery root, the
    re-rank depth and weight, the model it was built with, and the IVF layout
    (None for an exact index)."""

    ids: np.ndarray
    vectors: np.ndarray
    regions: np.ndarray | None
    root: str
    rerank_depth: int
    rerank_weight: float
    model: str
    fingerprint: str
    layout: IvfLayout | None


def read_index(path):
    """The `StoredIndex` of the search SavedModel folder `path`."""
    loaded = tf.saved_model.load(path)
    info = {k: v.numpy() for k, v in loaded.gallery_info().items()}
    text = lambda key: info[key].decode("utf-8") if key in info else ""  # noqa: E731
    ids = np.array([i.decode("utf-8") for i in loaded.ids.numpy()], dtype=object)
    depth = int(info.get("rerank_depth", 0))
    regions = loaded.regions.numpy() if depth else None
    layout = None
    if text("method") == "ivf":
        quantizer = None
        if text("codes") == "int8":
            quantizer = Int8Quantizer(
                loaded.code_low.numpy(), loaded.code_scale.numpy()
            )
        codes, offsets = unblocked(
            loaded.block_codes.numpy(),
            loaded.block_rows.numpy(),
            loaded.cluster_sizes.numpy(),
        )
        layout = IvfLayout(
            centroids=loaded.centroids.numpy(),
            offsets=offsets,
            codes=codes,
            ids=ids,
            regions=regions,
            quantizer=quantizer,
            trained_size=int(info["trained_size"]),
        )
        vectors = layout.vectors()
    else:
        vectors = loaded.embeddings.numpy()
    return StoredIndex(
        ids=ids,
        vectors=vectors,
        regions=regions,
        root=text("gallery_root"),
        rerank_depth=depth,
        rerank_weight=float(info.get("rerank_weight", 1.0)),
        model=text("model"),
        fingerprint=text("model_fingerprint"),
        layout=layout,
    )


def check_model(stored, model_dir, where):
    """Refuses `model_dir` when `stored` was built with another model."""
    given = model_fingerprint(model_dir)
    if stored.fingerprint and given and stored.fingerprint != given:
        raise ValueError(
            f"{where} was built with the retrieval model {stored.model!r}, and "
            f"{model_dir!r} is another model (its fingerprint differs): its "
            "embeddings would not compare with the index's. Update with that "
            "model, or build a new index."
        )
