"""The gallery a search index is built from: its image files (or a prepared
folder's records), their embeddings computed with the retrieval SavedModel,
and a disk spool that holds them while the index is written."""

import fnmatch
import os

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from common.data import SkipReport
from common.data.files import walk_files
from retrieval.data import check_image
from retrieval.records import is_prepared, parse_example, read_metadata, shard_files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


# Region features are stored in this dtype: half the bytes of float32, and
# the matching head's probabilities move by about 1e-3 (tests/retrieval).
REGION_DTYPE = np.float16


def list_gallery(images_dir, pattern="*", report=None):
    """Image files under `images_dir` (linked folders followed) whose name
    matches the glob `pattern`; other matching files are counted in `report`
    by type, and link loops by name."""
    if not os.path.isdir(images_dir):
        raise FileNotFoundError(f"Gallery folder not found: {images_dir!r}.")
    report = report if report is not None else SkipReport(images_dir)
    files = []
    on_loop = lambda path: report.skip("symbolic link loop", path)  # noqa: E731
    for path in walk_files(images_dir, on_loop=on_loop):
        name = os.path.basename(path)
        if not fnmatch.fnmatch(name, pattern):
            continue
        if name.lower().endswith(IMAGE_EXTENSIONS):
            files.append(path)
        else:
            extension = os.path.splitext(name)[1].lower() or "no extension"
            report.skip(f"not a readable image type ({extension})", path)
    return sorted(files)


def _folder_batches(images_dir, files, batch_size, report):
    """`(ids, encoded images)` batches of image files; unusable ones reported."""
    for start in range(0, len(files), batch_size):
        ids, blobs = [], []
        for path in files[start : start + batch_size]:
            problem = check_image(path)
            if problem:
                report.skip(problem, path)
                continue
            with open(path, "rb") as f:
                blobs.append(f.read())
            ids.append(os.path.relpath(path, images_dir))
        if blobs:
            yield ids, blobs


def _prepared_batches(folder, pattern, shard, batch_size):
    """`(ids, encoded images)` batches streamed from `retrieval prepare` shards
    (images validated when they were prepared)."""
    files = shard_files(folder, ("train", "val", "test"))
    dataset = tf.data.TFRecordDataset(files)
    if shard is not None:
        dataset = dataset.shard(shard[1], shard[0])
    dataset = dataset.map(parse_example)
    for batch in dataset.batch(batch_size).prefetch(2):
        ids = [i.decode("utf-8") for i in batch["id"].numpy()]
        keep = [
            j
            for j, i in enumerate(ids)
            if fnmatch.fnmatch(os.path.basename(i), pattern)
        ]
        if keep:
            blobs = batch["image"].numpy()
            yield [ids[j] for j in keep], [blobs[j] for j in keep]


class EmbeddingSpool:
    """Gallery embeddings, ids and (optionally) region features written to
    disk as they are computed (raw float32 / float16 rows and one id a line
    in a temporary folder), and read back one slice at a time, so memory does
    not grow with the gallery."""

    def __init__(self, folder):
        import tempfile

        os.makedirs(folder, exist_ok=True)
        self.folder = tempfile.mkdtemp(prefix=".embeddings-", dir=folder)
        self._vectors = open(os.path.join(self.folder, "embeddings.f32"), "wb")
        self._regions = open(os.path.join(self.folder, "regions.f16"), "wb")
        self._ids = open(os.path.join(self.folder, "ids.txt"), "w", encoding="utf-8")
        self.count, self.dim, self.region_shape = 0, None, None

    def add(self, embeddings, ids, regions=None):
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if self.dim is None:
            self.dim = embeddings.shape[1]
        if regions is not None:
            regions = np.ascontiguousarray(regions, dtype=REGION_DTYPE)
            if self.region_shape is None:
                self.region_shape = regions.shape[1:]
            self._regions.write(regions.tobytes())
        self._vectors.write(embeddings.tobytes())
        for image_id in ids:
            if "\n" in image_id:
                raise ValueError(f"An image id holds a line break: {image_id!r}.")
            self._ids.write(image_id + "\n")
        self.count += len(ids)

    def slices(self, size):
        """`(embeddings, ids, regions or None)` of rows `[0, size)`, `[size,
        2 size)`, ..."""
        for f in (self._vectors, self._regions, self._ids):
            f.close()
        row = self.dim * 4
        region_row = (
            int(np.prod(self.region_shape)) * np.dtype(REGION_DTYPE).itemsize
            if self.region_shape is not None
            else 0
        )
        with (
            open(os.path.join(self.folder, "embeddings.f32"), "rb") as vectors,
            open(os.path.join(self.folder, "regions.f16"), "rb") as regions,
            open(os.path.join(self.folder, "ids.txt"), encoding="utf-8") as ids,
        ):
            for start in range(0, self.count, size):
                rows = min(size, self.count - start)
                block = np.frombuffer(vectors.read(rows * row), dtype=np.float32)
                names = [ids.readline().rstrip("\n") for _ in range(rows)]
                features = None
                if region_row:
                    features = np.frombuffer(
                        regions.read(rows * region_row), dtype=REGION_DTYPE
                    ).reshape((rows,) + tuple(self.region_shape))
                yield block.reshape(rows, self.dim), np.array(names), features

    def close(self):
        import shutil

        for f in (self._vectors, self._regions, self._ids):
            f.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def embed_gallery(
    encoder, batches, spool, verbose=True, total=None, with_regions=False
):
    """Embeds `(ids, encoded images)` batches with the retrieval SavedModel's
    `embed_image` signature (`image_regions`, keeping the region features,
    with `with_regions`) into `spool`; returns the number embedded."""
    name = "image_regions" if with_regions else "embed_image"
    signature = encoder.signatures[name]
    progress = tqdm(
        # a bar on a terminal only (tqdm's `disable=None`), not in logs
        total=total,
        desc="Embedding gallery",
        unit="image",
        disable=None if verbose else True,
    )
    for ids, blobs in batches:
        out = signature(image_bytes=tf.constant(blobs))
        regions = out["regions"].numpy() if with_regions else None
        spool.add(out["embeddings"].numpy(), ids, regions)
        progress.update(len(ids))
    progress.close()
    return spool.count


def gallery_source(images, pattern, shard, batch_size, report):
    """`(image root, number of images or None, (ids, bytes) batches)` of a
    folder of image files or a prepared folder."""
    if is_prepared(images):
        root = read_metadata(images)["image_root"]
        return root, None, _prepared_batches(images, pattern, shard, batch_size)
    root = os.path.abspath(images)
    files = list_gallery(images, pattern, report)
    if shard is not None:
        files = files[shard[0] :: shard[1]]
    if not files:
        raise ValueError(f"No image file matching {pattern!r} under {images!r}.")
    return root, len(files), _folder_batches(root, files, batch_size, report)
