"""Reading labelled video datasets: class folders, CSV manifests, UCF101 lists.

`load_video_data(path)` detects the layout of `path`:

1. a CSV manifest (`path,label[,split]`; several labels separated by `|`
   make the dataset multi-label), given directly or as `ROOT/manifest.csv`;
2. a UCF101-style split list: `ROOT/ucfTrainTestlist/` with `classInd.txt`,
   `trainlist0N.txt` and `testlist0N.txt` (`split_index` picks N);
3. a folder per class: `ROOT/<class>/<clip>.mp4|avi|mkv|webm|mov`.

Manifest paths may be absolute or use `..`, and symbolic links (a linked
class folder, linked clip files) are followed: the data is the user's. Missing,
empty or broken-link files, link loops, files of a type that is not a video,
empty labels and test/val labels never seen in training are skipped, counted
and reported once; decoding problems are found (and reported) when clips are
decoded.
"""

import collections
import csv
import dataclasses
import os

import numpy as np

from common.data import SkipReport
from common.data.files import csv_header, file_problem, resolve_reference, walk_files
from common.data.splits import SPLIT_ALIASES, SPLITS, assign_splits

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


@dataclasses.dataclass
class VideoData:
    """Clips with their labels and splits.

    Attributes:
        root: the data root folder.
        layout: `"csv"`, `"ucf101"` or `"folders"`.
        paths: absolute clip paths.
        labels: one list of class names per clip.
        splits: `train`, `val` or `test` per clip.
        class_names: sorted class names seen in training.
        multi_label: whether any clip has several labels.
        report: the `SkipReport`.
    """

    root: str
    layout: str
    paths: list
    labels: list
    splits: list
    class_names: list
    multi_label: bool
    report: SkipReport

    def subset(self, split):
        if split not in SPLITS:
            raise ValueError(f"`split` must be one of {SPLITS}; received {split!r}.")
        keep = [i for i, s in enumerate(self.splits) if s == split]
        return [self.paths[i] for i in keep], [self.labels[i] for i in keep]

    def counts(self):
        counter = collections.Counter(self.splits)
        return {split: counter.get(split, 0) for split in SPLITS}

    def targets(self, labels):
        """Class indices `[N]` (single-label) or multi-hot `[N, C]`."""
        index = {name: i for i, name in enumerate(self.class_names)}
        if self.multi_label:
            hot = np.zeros((len(labels), len(self.class_names)), np.float32)
            for row, names in enumerate(labels):
                hot[row, [index[n] for n in names]] = 1.0
            return hot
        return np.array([index[names[0]] for names in labels], np.int64)


def _read_csv(path, report):
    with open(path, encoding="utf-8", errors="strict", newline="") as f:
        try:
            rows = list(csv.reader(f))
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} is not UTF-8: {error}") from error
    csv_header(rows, path, ("path", "label"), ("split",))
    entries = []
    name = os.path.basename(path)
    for number, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].strip():
            report.skip("row without path or label", f"{name}:{number}")
            continue
        labels = [label.strip() for label in row[1].split("|") if label.strip()]
        split = row[2].strip() if len(row) > 2 and row[2].strip() else None
        entries.append((row[0].strip(), labels, split))
    return os.path.dirname(os.path.abspath(path)), entries


def _read_ucf101(root, split_index, report):
    lists = os.path.join(root, "ucfTrainTestlist")
    entries = []
    for split, prefix in (("train", "trainlist"), ("test", "testlist")):
        path = os.path.join(lists, f"{prefix}{split_index:02d}.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"UCF101 split list not found: {path}.")
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    clip = line.split()[0]
                    entries.append((clip, [clip.split("/")[0]], split))
    return root, entries


def _read_folders(root, report):
    entries = []
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if label.startswith("."):
            continue
        if not os.path.isdir(folder):
            if file_problem(folder) == "symbolic link loop":
                report.skip("symbolic link loop", folder)
            continue
        for path in walk_files(
            folder, on_loop=lambda p: report.skip("symbolic link loop", p)
        ):
            reference = os.path.relpath(path, root)
            if path.lower().endswith(VIDEO_EXTENSIONS):
                entries.append((reference, [label], None))
            else:
                extension = os.path.splitext(path)[1].lower() or "no extension"
                report.skip(f"not a video file type ({extension})", reference)
    return root, entries


def detect_layout(path):
    """Returns `(layout, files)` for a data path: the manifest, or the folder."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"Data path not found: {path!r}.")
    if os.path.isfile(path):
        if path.lower().endswith(".csv"):
            return "csv", [path]
        raise ValueError(f"{path!r}: expected a .csv manifest or a folder.")
    if os.path.isfile(os.path.join(path, "manifest.csv")):
        return "csv", [os.path.join(path, "manifest.csv")]
    if os.path.isdir(os.path.join(path, "ucfTrainTestlist")):
        return "ucf101", [path]
    return "folders", [path]


def _usable_clips(root, entries, report):
    """`(paths, labels, splits)` of the entries whose clip file is usable,
    labelled, named once and in a known split; the others go to `report`."""
    seen = set()
    paths, labels, splits = [], [], []
    for reference, clip_labels, split in entries:
        clip_path = resolve_reference(root, reference)
        if not clip_labels:
            report.skip("clip without a label", reference)
            continue
        problem = file_problem(clip_path, "clip")
        if problem is not None:
            report.skip(problem, reference)
            continue
        if clip_path in seen:
            report.skip("duplicate row", reference)
            continue
        if split is not None:
            normalized = SPLIT_ALIASES.get(split.lower())
            if normalized is None:
                report.skip("unknown split name", f"{reference}: {split!r}")
                continue
            split = normalized
        seen.add(clip_path)
        paths.append(clip_path)
        labels.append(sorted(set(clip_labels)))
        splits.append(split)
    return paths, labels, splits


def _seen_in_training(paths, labels, splits, train_labels, report):
    """The clips whose every label has training clips; the others go to
    `report` (a model cannot learn a class it never sees)."""
    keep = []
    for index, clip_labels in enumerate(labels):
        unseen = [label for label in clip_labels if label not in train_labels]
        if unseen:
            report.skip("label unseen in training", f"{paths[index]}: {unseen}")
        else:
            keep.append(index)
    paths = [paths[i] for i in keep]
    labels = [labels[i] for i in keep]
    splits = [splits[i] for i in keep]
    return paths, labels, splits


def load_video_data(
    path, seed=0, val_fraction=0.1, test_fraction=0.1, split_index=1, verbose=True
):
    """Reads, checks and splits a labelled video dataset; returns `VideoData`."""
    report = SkipReport(path)
    layout, files = detect_layout(path)
    if layout == "csv":
        root, entries = _read_csv(files[0], report)
    elif layout == "ucf101":
        root, entries = _read_ucf101(files[0], split_index, report)
    else:
        root, entries = _read_folders(files[0], report)
    paths, labels, splits = _usable_clips(root, entries, report)
    if not paths:
        raise ValueError(
            f"No usable clip in {path!r} ({layout} layout): {report.summary()}"
        )
    splits = assign_splits(splits, seed, val_fraction, test_fraction, min_carved_val=0)
    train_labels = {
        label
        for ls, s in zip(labels, splits, strict=True)
        if s == "train"
        for label in ls
    }
    if not train_labels:
        raise ValueError(f"No training clip in {path!r}: {report.summary()}")
    paths, labels, splits = _seen_in_training(
        paths, labels, splits, train_labels, report
    )
    report.kept = len(paths)
    data = VideoData(
        root=root,
        layout=layout,
        paths=paths,
        labels=labels,
        splits=splits,
        class_names=sorted(train_labels),
        multi_label=any(len(ls) > 1 for ls in labels),
        report=report,
    )
    if verbose:
        counts = data.counts()
        print(
            f"Data: {layout} layout, {len(paths)} clips, "
            f"{len(data.class_names)} classes "
            f"(train {counts['train']}, val {counts['val']}, test {counts['test']})"
        )
        if report.skipped:
            print("Skipped: " + report.summary())
    return data
