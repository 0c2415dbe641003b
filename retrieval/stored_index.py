"""A search SavedModel read back: its ids, vectors (decoded from int8
codes), region features, settings and the model it was built with."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from retrieval.ann import Blocks, Int8Quantizer, IvfLayout, in_cluster_order, unblocked
from retrieval.search_index import model_fingerprint


@dataclasses.dataclass
class StoredIndex:
    """What a search SavedModel holds, read back: ids (str), float32 vectors
    (decoded from int8 codes), region features or None, the gallery root, the
    re-rank depth and weight, the model it was built with, the IVF layout
    and default nprobe (None for an exact index)."""

    ids: np.ndarray
    stored_vectors: np.ndarray | None
    regions: np.ndarray | None
    root: str
    rerank_depth: int
    rerank_weight: float
    model: str
    fingerprint: str
    layout: IvfLayout | None
    nprobe: int | None = None

    @property
    def dim(self):
        if self.layout is not None:
            return self.layout.dim
        return int(self.stored_vectors.shape[1])

    @property
    def vectors(self):
        """float32 `[N, D]`: the exact index's embeddings, or the IVF layout's
        rows (decoded from int8 codes), in `ids` order."""
        if self.stored_vectors is None:
            return self.layout.vectors()
        return self.stored_vectors


def _variables(path):
    """`name -> numpy value` reader of the variables of the SavedModel folder
    `path` (its checkpoint is read directly: no graph is loaded, and each
    array is read once)."""
    prefix = os.path.join(path, "variables", "variables")
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.NotFoundError, ValueError) as error:
        raise ValueError(f"{path!r} is not a search SavedModel: {error}") from None
    names = set(reader.get_variable_to_shape_map())

    def value(name, default=None):
        key = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
        if key not in names:
            if default is not None:
                return default
            raise ValueError(
                f"{path!r} is not a search SavedModel written by `retrieval "
                f"index`: it has no variable {name!r}."
            )
        return reader.get_tensor(key)

    value.has = lambda name: f"{name}/.ATTRIBUTES/VARIABLE_VALUE" in names
    return value


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_index(path):
    """The `StoredIndex` of the search SavedModel folder `path`."""
    value = _variables(path)
    ids = np.array([i.decode("utf-8") for i in value("ids")], dtype=object)
    depth = int(value("rerank_depth"))
    regions = value("regions") if depth else None
    layout = None
    if value.has("block_codes"):
        quantizer = None
        if value.has("code_scale"):
            quantizer = Int8Quantizer(value("code_low"), value("code_scale"))
        sizes = value("cluster_sizes")
        blocks = Blocks(
            value("block_codes"),
            value("block_rows"),
            value("block_start"),
            value("block_count"),
        )
        codes, offsets = None, np.concatenate([[0], np.cumsum(sizes)])
        if not in_cluster_order(blocks, sizes):  # read the rows by position
            codes, offsets = unblocked(blocks.codes, blocks.rows, sizes)
            blocks = None
        layout = IvfLayout(
            centroids=value("centroids"),
            offsets=offsets.astype(np.int64),
            codes=codes,
            ids=ids,
            regions=regions,
            quantizer=quantizer,
            trained_size=int(value("trained_size")),
            blocks=blocks,
            floats=value("float_vectors") if value.has("float_vectors") else None,
        )
        vectors = None  # decoded on demand (`StoredIndex.vectors`)
    else:
        vectors = value("embeddings")
    return StoredIndex(
        ids=ids,
        stored_vectors=vectors,
        regions=regions,
        root=_text(value("gallery_root")),
        rerank_depth=depth,
        rerank_weight=float(value("rerank_weight")),
        model=_text(value("model_path", b"")),
        fingerprint=_text(value("model_fingerprint", b"")),
        layout=layout,
        nprobe=int(value("default_nprobe")) if layout is not None else None,
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
