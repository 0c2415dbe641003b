"""Reading image-caption datasets in their common layouts, and tf.data pipelines.

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
import csv
import dataclasses
import glob
import json
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf
from PIL import Image

from common.data import SkipReport, decode_and_resize
from common.data.epochs import epoch_seed, epoch_stream, stateless_seeds
from common.data.files import file_problem, resolve_reference
from common.data.limits import MAX_IMAGE_PIXELS
from common.data.shards import read_shards
from common.data.splits import SPLIT_ALIASES, SPLITS, assign_splits

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


@dataclasses.dataclass
class PreparedImages:
    """The images of one prepared split: its TFRecord shard files and the image
    ids (paths relative to the image folder) in the order the shards hold them.

    Pipelines take it wherever they take a list of image paths.
    """

    files: list
    ids: list

    def __len__(self):
        return len(self.ids)


# ----------------------------------------------------------------------------
# Layout readers: each yields (image_reference, caption, split or None) rows and
# records unreadable lines in the report. References are relative to the image
# folder they return.


def _decoded_lines(path, report):
    """Lines of a text file; lines that are not UTF-8 are skipped and reported."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError:
            report.skip("non-UTF-8 text", f"{os.path.basename(path)}:{number}")


def _first_existing_dir(root, names):
    for name in names:
        candidate = os.path.join(root, name)
        if os.path.isdir(candidate):
            return candidate
    return root


def read_kaggle_captions(captions_path, report):
    root = os.path.dirname(os.path.abspath(captions_path))
    image_dir = _first_existing_dir(root, ("Images", "images", "Flicker8k_Dataset"))
    lines = [text for _, text in _decoded_lines(captions_path, report)]
    rows = list(csv.reader(lines))
    if not rows:
        raise ValueError(f"{captions_path} is empty.")
    header = [h.strip().lower() for h in rows[0]]
    if header[:2] != ["image", "caption"]:
        raise ValueError(
            f"{captions_path} must start with a header 'image,caption[,split]'; "
            f"received {rows[0]!r}."
        )
    has_split = len(header) >= 3 and header[2] == "split"
    entries = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            report.skip("malformed line", f"{os.path.basename(captions_path)}:{number}")
            continue
        if has_split and len(row) >= 3:
            entries.append((row[0], ",".join(row[1:-1]), row[-1]))
        else:
            entries.append((row[0], ",".join(row[1:]), None))
    return image_dir, entries


def read_flickr8k_tokens(token_path, report):
    root = os.path.dirname(os.path.abspath(token_path))
    image_dir = _first_existing_dir(
        root, ("Flicker8k_Dataset", "Flickr8k_Dataset", "Images", "images")
    )
    split_of = {}
    for split, name in (("train", "train"), ("val", "dev"), ("test", "test")):
        for split_file in glob.glob(os.path.join(root, f"*.{name}Images.txt")):
            for _, line in _decoded_lines(split_file, report):
                if line.strip():
                    split_of[line.strip()] = split
    entries = []
    for number, line in _decoded_lines(token_path, report):
        if not line.strip():
            continue
        reference, sep, caption = line.partition("\t")
        if not sep:
            report.skip("malformed line", f"{os.path.basename(token_path)}:{number}")
            continue
        image = reference.split("#", 1)[0]
        entries.append((image, caption, split_of.get(image) if split_of else None))
    return image_dir, entries


def _load_json(path, report):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8: {error}") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def read_karpathy_json(json_path, report, data=None):
    data = data or _load_json(json_path, report)
    root = os.path.dirname(os.path.abspath(json_path))
    entries = []
    for item in data.get("images", []):
        filename = item.get("filename")
        if not filename:
            report.skip("malformed record", json.dumps(item)[:80])
            continue
        filepath = item.get("filepath", "")
        candidates = [
            os.path.join(filepath, filename),
            os.path.join("images", filepath, filename),
            filename,
            os.path.join("images", filename),
        ]
        reference = next(
            (c for c in candidates if os.path.isfile(os.path.join(root, c))),
            candidates[0],
        )
        for sentence in item.get("sentences", []):
            entries.append((reference, sentence.get("raw", ""), item.get("split")))
    return root, entries


def read_coco_captions(json_paths, report):
    json_paths = sorted(json_paths)
    annotations_dir = os.path.dirname(os.path.abspath(json_paths[0]))
    root = (
        os.path.dirname(annotations_dir)
        if os.path.basename(annotations_dir) == "annotations"
        else annotations_dir
    )
    entries = []
    for path in json_paths:
        data = _load_json(path, report)
        # captions_train2017.json -> folder "train2017", split "train"
        folder = os.path.splitext(os.path.basename(path))[0].replace("captions_", "")
        split = next(
            (s for s in ("train", "val", "test") if folder.startswith(s)), None
        )
        files = {image["id"]: image["file_name"] for image in data.get("images", [])}
        for annotation in data.get("annotations", []):
            name = files.get(annotation.get("image_id"))
            if name is None:
                report.skip(
                    "caption of an unknown image id", annotation.get("image_id")
                )
                continue
            candidates = [
                os.path.join(folder, name),
                os.path.join("images", folder, name),
                os.path.join("images", name),
                name,
            ]
            reference = next(
                (c for c in candidates if os.path.isfile(os.path.join(root, c))),
                candidates[0],
            )
            entries.append((reference, annotation.get("caption", ""), split))
    return root, entries


def read_jsonl_manifest(manifest_path, report):
    root = os.path.dirname(os.path.abspath(manifest_path))
    entries = []
    name = os.path.basename(manifest_path)
    for number, line in _decoded_lines(manifest_path, report):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            report.skip("malformed line", f"{name}:{number}")
            continue
        if (
            not isinstance(record, dict)
            or "image" not in record
            or "caption" not in record
        ):
            report.skip("record without image or caption", f"{name}:{number}")
            continue
        entries.append((str(record["image"]), record["caption"], record.get("split")))
    return root, entries


def detect_layout(path):
    """Returns `(layout, files)` for a data path, or raises naming what it sought."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data path not found: {path!r}.")
    if os.path.isfile(path):
        lower = os.path.basename(path).lower()
        if lower.endswith(".jsonl"):
            return "jsonl", [path]
        if lower.endswith(".json"):
            with open(path, encoding="utf-8", errors="replace") as f:
                head = f.read(4096)
            return (
                "coco"
                if '"annotations"' in head or "captions_" in lower
                else "karpathy"
            ), [path]
        if "token" in lower:
            return "flickr8k", [path]
        return "kaggle", [path]
    for name in ("captions.txt", "captions.csv"):
        if os.path.isfile(os.path.join(path, name)):
            return "kaggle", [os.path.join(path, name)]
    tokens = sorted(glob.glob(os.path.join(path, "*token.txt")))
    if tokens:
        preferred = [t for t in tokens if "lemma" not in t.lower()]
        return "flickr8k", [(preferred or tokens)[0]]
    karpathy = sorted(glob.glob(os.path.join(path, "dataset_*.json")))
    if karpathy:
        return "karpathy", [karpathy[0]]
    coco = sorted(glob.glob(os.path.join(path, "annotations", "captions_*.json")))
    if coco:
        return "coco", coco
    manifests = sorted(glob.glob(os.path.join(path, "*.jsonl")))
    if manifests:
        return "jsonl", [manifests[0]]
    raise ValueError(
        f"No known dataset layout in {path!r}: looked for captions.txt, "
        "*token.txt (Flickr8k), dataset_*.json (Karpathy), "
        "annotations/captions_*.json (COCO) and *.jsonl."
    )


def read_entries(path, report):
    layout, files = detect_layout(path)
    if layout == "kaggle":
        image_dir, entries = read_kaggle_captions(files[0], report)
    elif layout == "flickr8k":
        image_dir, entries = read_flickr8k_tokens(files[0], report)
    elif layout == "karpathy":
        image_dir, entries = read_karpathy_json(files[0], report)
    elif layout == "coco":
        image_dir, entries = read_coco_captions(files, report)
    else:
        image_dir, entries = read_jsonl_manifest(files[0], report)
    return layout, image_dir, entries


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
    from retrieval.records import is_prepared

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
    from retrieval.records import read_metadata, read_split_index

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


# ----------------------------------------------------------------------------
# tf.data pipelines.


def _load_image(path, image_size):
    return decode_and_resize(tf.io.read_file(path), image_size)


def _caption_table(captions):
    """Captions as a padded string matrix `[N, max]` and counts `[N]`."""
    longest = max(len(c) for c in captions)
    table = np.array([c + [""] * (longest - len(c)) for c in captions], dtype=object)
    counts = np.array([len(c) for c in captions], dtype=np.int32)
    return table.astype(str), counts


def _augment(image, image_size, seed):
    # A mild random crop; no flips or colour changes, which would contradict
    # captions that name sides and colours. `seed`: int64 [2], stateless.
    scale = tf.random.stateless_uniform((), seed, 0.85, 1.0)
    size = tf.cast(tf.round(scale * image_size), tf.int32)
    image = tf.image.stateless_random_crop(image, (size, size, 3), seed + [0, 1])
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _parse_record(record):
    """A prepared `tf.train.Example` -> `(image bytes, captions [n], n)`."""
    example = tf.io.parse_single_example(
        record,
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "captions": tf.io.VarLenFeature(tf.string),
        },
    )
    texts = tf.sparse.to_dense(example["captions"])
    return example["image"], texts, tf.shape(texts, out_type=tf.int32)[0]


def training_dataset(
    image_paths,
    captions,
    image_size,
    batch_size,
    augment=False,
    cache="none",
    seed=0,
    drop_remainder=True,
    shuffle_buffer=2048,
    first_epoch=0,
    epochs=1,
    steps_per_epoch=None,
    worker=(0, 1),
):
    """`(images uint8 [B, S, S, 3], text string [B])` batches of epochs
    `first_epoch .. epochs - 1` one after the other, with one random caption
    per image per epoch (so a batch holds no two copies of an image).

    Each epoch is one pass over the images in an order, a choice of captions
    and crops that depend only on `seed` and the epoch's number
    (`common.data.epochs`), so a run resumed at epoch `e` sees what an
    uninterrupted one would have.

    Args:
        image_paths: image file paths, or a `PreparedImages` (shards).
        cache: `"memory"`, `"none"`, or a file path prefix for a disk cache of
            the decoded, resized images. Cached images are shuffled all
            together; uncached ones are shuffled before decoding (paths all
            together, prepared records in a file order shuffled each epoch
            and a `shuffle_buffer` of encoded images), so memory does not grow
            with the dataset.
        first_epoch: the epoch the stream starts with.
        epochs: the epoch it ends before.
        steps_per_epoch: batches per epoch (default: one pass); prepared
            shards repeat within an epoch until it is full (the shards of
            one worker may hold fewer images than the others').
        worker: `(index, count)`: with prepared shards, this worker reads
            shard files `index`, `index + count`, ... (a cluster split by
            file).
    """
    cached = bool(cache) and cache != "none"
    prepared = isinstance(image_paths, PreparedImages)
    if prepared:
        worker_index, workers = worker
        files = list(image_paths.files)[worker_index::workers]
        if not files:
            raise ValueError(
                f"Worker {worker_index} of {workers} has no shard file to read: "
                f"{len(image_paths.files)} shards."
            )
        size = max(1, len(image_paths) * len(files) // len(image_paths.files))
        buffer = size if cached else min(size, shuffle_buffer)

        def source(order_seed):  # None: shard order, else shuffled by it
            records = read_shards(files, order_seed)
            return records.map(_parse_record, num_parallel_calls=tf.data.AUTOTUNE)

        def load(image, texts, count):
            return decode_and_resize(image, image_size), texts, count
    else:
        table, counts = _caption_table(captions)
        rows = tf.data.Dataset.from_tensor_slices((list(image_paths), table, counts))
        buffer = len(image_paths)

        def source(order_seed):
            return rows

        def load(path, texts, count):
            return _load_image(path, image_size), texts, count

    if cached:
        decoded = source(None).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        decoded = decoded.cache() if cache == "memory" else decoded.cache(cache)

    def pick(element, element_seed):
        image, texts, count = element
        index = tf.random.stateless_uniform((), element_seed, 0, count, dtype=tf.int32)
        if augment:
            image = _augment(image, image_size, element_seed + [0, 2])
        return image, texts[index]

    def one_epoch(epoch):
        this_seed = epoch_seed(seed, epoch)
        if cached:
            dataset = decoded.shuffle(buffer, seed=this_seed)
        else:
            dataset = source(this_seed).shuffle(buffer, seed=this_seed)
            dataset = dataset.map(
                load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
            )
        if prepared and steps_per_epoch:
            dataset = dataset.repeat()
        dataset = stateless_seeds(dataset, this_seed).map(
            pick, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.take(steps_per_epoch) if steps_per_epoch else dataset

    stream = epoch_stream(one_epoch, first_epoch, epochs)
    return stream.prefetch(tf.data.AUTOTUNE)


def image_dataset(image_paths, image_size, batch_size):
    """Batches of uint8 images in order (for embedding a gallery); takes image
    paths or a `PreparedImages`."""
    if isinstance(image_paths, PreparedImages):
        dataset = tf.data.TFRecordDataset(list(image_paths.files)).map(
            lambda record: decode_and_resize(_parse_record(record)[0], image_size),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        dataset = tf.data.Dataset.from_tensor_slices(list(image_paths)).map(
            lambda path: _load_image(path, image_size),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def flatten_captions(captions):
    """`(texts, text_to_image)` with every caption once, in image order."""
    texts, text_to_image = [], []
    for index, image_captions in enumerate(captions):
        texts.extend(image_captions)
        text_to_image.extend([index] * len(image_captions))
    return texts, np.asarray(text_to_image, dtype=np.int64)
