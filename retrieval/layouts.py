"""The image-caption layouts `retrieval.data` reads, and how one is detected.

Each reader returns `(image folder, [(image reference, caption, split or
None)])` and records unreadable lines in the report; references are relative
to the image folder (or absolute).
"""

import csv
import glob
import json
import os

from common.data.files import csv_header


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
    header = csv_header(rows, captions_path, ("image", "caption"), ("split",))
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


def read_karpathy_json(json_path, report):
    data = _load_json(json_path, report)
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
