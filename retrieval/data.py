"""Reading image-caption datasets in their common layouts (pipelines over them:
`retrieval.pipeline`).

`load_retrieval_data(path)` auto-detects the layout of `path`:

1. Flickr8k/30k Kaggle layout: `captions.txt` (CSV `image,caption[,split]`) +
   `Images/`.
2. Flickr8k original layout: `Flickr8k.token.txt` (`IMAGE.jpg#N<TAB>caption`) +
   an image folder, with `Flickr_8k.trainImages.txt` / `devImages` /
   `testImages` split files when present.
3. Karpathy split JSON (`dataset_flickr8k.json`, `dataset_flickr30k.json`,
   `dataset_coco.json`) + image root.
4. COCO captions JSON (`annotations/captions_*.json`) + image folder.
5. JSONL manifest, one `{"image": path, "caption": text, "split": optional}` a
   line.
6. A folder written by `python -m retrieval prepare` (TFRecord shards; its
   splits are the ones `prepare` made).

Image references may be absolute or use `..`, and symbolic links (a linked
image folder, linked files) are followed: the data is the user's. Bad records
(missing, empty, broken-link, unreadable, corrupt or oversized images, image
types TensorFlow cannot decode, link loops, empty captions, non-UTF-8 lines)
are skipped, counted and reported once; a dataset where nothing is usable is
an error that says why.
"""

import collections
import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from common.data import SkipReport
from common.data.files import file_problem, resolve_reference
from common.data.limits import MAX_IMAGE_PIXELS
from common.data.splits import SPLIT_ALIASES, SPLITS, assign_splits
from retrieval.layouts import read_entries
from retrieval.records import (
    PreparedImages,
    is_prepared,
    read_metadata,
    read_split_index,
)

DEFAULT_MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
# What `tf.io.decode_image` reads (Pillow names); others (TIFF, ...) are skipped.
DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")


@dataclasses.dataclass
class RetrievalData:
    """Images with their captions and splits.

    Attributes:
        root: the data root folder.
        layout: the detected layout name.
        images: absolute image paths (prepared data: ids, the paths relative
            to `root`).
        captions: one list of captions per image.
        splits: one of `train`, `val`, `test` per image.
        report: the `SkipReport` of what was left out.
        prepared: the prepared folder the data comes from, or `None`.
        shards: prepared data: the shard file names of each split.
    """

    root: str
    layout: str
    images: list
    captions: list
    splits: list
    report: SkipReport
    prepared: str | None = None
    shards: dict | None = None

    def subset(self, split):
        """`(images, captions)` of one split: `images` is a list of image paths,
        or, for prepared data, a `PreparedImages` (its shard files and ids)."""
        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {SPLITS}; received {split!r}.")
        keep = [i for i, s in enumerate(self.splits) if s == split]
        images = [self.images[i] for i in keep]
        if self.prepared is not None:
            files = [os.path.join(self.prepared, n) for n in self.shards[split]]
            images = PreparedImages(files, images)
        return images, [self.captions[i] for i in keep]

    def counts(self):
        counter = collections.Counter(self.splits)
        return {split: counter.get(split, 0) for split in SPLITS}


# ----------------------------------------------------------------------------
# Validation and splitting.


def check_image(path, max_pixels=DEFAULT_MAX_IMAGE_PIXELS):
    """None if `path` is an image TensorFlow decodes, within `max_pixels`,
    else the reason."""
    problem = file_problem(path, "image")
    if problem is not None:
        return problem
    try:
        with Image.open(path) as image:
            if image.format not in DECODABLE_FORMATS:
                return f"unsupported image type ({image.format})"
            width, height = image.size
            if width * height > max_pixels:
                return f"image over {max_pixels} pixels"
            if width < 1 or height < 1:
                return "image without pixels"
            # Decode (at reduced scale for JPEG) to catch truncated files.
            image.draft("RGB", (64, 64))
            image.load()
    except Image.DecompressionBombError:
        return f"image over {max_pixels} pixels"
    except Exception:
        return "unreadable or corrupt image"
    return None


def _shown(path, root):
    """`path` relative to `root` when inside it, else absolute (for reports)."""
    relative = os.path.relpath(path, root)
    return path if relative.startswith("..") else relative


def _clean_caption(caption):
    if not isinstance(caption, str):
        return None
    caption = " ".join(caption.split())
    return caption or None


def load_retrieval_data(
    path,
    seed=0,
    val_fraction=0.1,
    test_fraction=0.1,
    max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS,
    verbose=True,
):
    """Reads, validates and splits an image-caption dataset.

    Args:
        path: a dataset folder or manifest file in one of the module's layouts.
        seed: seed of the split by image, when the data has none.
        val_fraction: fraction of images for validation when split here.
        test_fraction: fraction of images for test when split here.
        max_image_pixels: images with more pixels are skipped (decompression
            bombs are refused before decoding).
        verbose: print the skip report.

    Returns:
        A `RetrievalData`.
    """
    if os.path.isdir(path) and is_prepared(path):
        return load_prepared(path, verbose)
    report = SkipReport(path)
    layout, image_dir, entries = read_entries(path, report)
    by_image = collections.OrderedDict()
    for reference, caption, split in entries:
        if not isinstance(reference, str) or not reference.strip():
            report.skip("record without image", repr(reference))
            continue
        image_path = resolve_reference(image_dir, reference.strip())
        caption = _clean_caption(caption)
        if caption is None:
            report.skip("empty caption", reference)
            continue
        record = by_image.setdefault(image_path, {"captions": [], "split": None})
        if caption in record["captions"]:
            report.skip("duplicate caption", f"{reference}: {caption[:40]}")
            continue
        record["captions"].append(caption)
        if split is not None:
            normalized = SPLIT_ALIASES.get(str(split).strip().lower())
            if normalized is None:
                report.skip("unknown split name", f"{reference}: {split!r}")
            else:
                record["split"] = normalized

    paths = list(by_image)
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(lambda p: check_image(p, max_image_pixels), paths))
    images, captions, splits = [], [], []
    for image_path, problem in zip(paths, problems, strict=True):
        record = by_image[image_path]
        if problem is not None:
            for _ in record["captions"]:
                report.skip(problem, _shown(image_path, image_dir))
            continue
        images.append(image_path)
        captions.append(record["captions"])
        splits.append(record["split"])
    report.kept = sum(len(c) for c in captions)
    if not images:
        raise ValueError(
            f"No usable image-caption pair in {path!r} (layout {layout}): "
            + report.summary()
        )
    splits = assign_splits(splits, seed, val_fraction, test_fraction)
    data = RetrievalData(image_dir, layout, images, captions, splits, report)
    if verbose:
        counts = data.counts()
        print(
            f"Data: {layout} layout, {len(images)} images, {report.kept} captions "
            f"(train {counts['train']}, val {counts['val']}, test {counts['test']} "
            "images)"
        )
        if report.skipped:
            print("Skipped: " + report.summary())
    return data


def load_prepared(path, verbose=True):
    """A `RetrievalData` over the shards `python -m retrieval prepare` wrote."""
    metadata = read_metadata(path)
    images, captions, splits = [], [], []
    for split in SPLITS:
        ids, texts = read_split_index(path, split)
        images += ids
        captions += texts
        splits += [split] * len(ids)
    report = SkipReport(path)
    report.kept = sum(len(c) for c in captions)
    if not images:
        raise ValueError(f"The prepared folder {path!r} holds no images.")
    data = RetrievalData(
        metadata["image_root"],
        "prepared",
        images,
        captions,
        splits,
        report,
        prepared=os.path.abspath(path),
        shards=metadata["shards"],
    )
    if verbose:
        counts = data.counts()
        shards = sum(len(n) for n in data.shards.values())
        print(
            f"Data: {shards} prepared shards in {path}, {len(images)} images, "
            f"{report.kept} captions (train {counts['train']}, val {counts['val']}, "
            f"test {counts['test']} images)"
        )
    return data


def load_data(config, data_path=None, verbose=True):
    """The run's data (or `data_path`), split as the config says."""
    return load_retrieval_data(
        data_path or config.data.path,
        seed=config.data.seed,
        val_fraction=config.data.val_fraction,
        test_fraction=config.data.test_fraction,
        max_image_pixels=config.data.max_image_pixels,
        verbose=verbose,
    )
