"""Every video layout loads as users lay data out: class folders that are
links to another disk, clip files that are links (git-annex, DVC), manifests
with absolute paths or `..`; link loops are refused by name without a hang."""

import os

import numpy as np

from common.data.video import write_clip
from common.testing import TestCase
from video_understanding.data import load_video_data

CLASSES = ("jump", "run")
CLIPS = ("c1.mp4", "c2.mp4")


def clip(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return write_clip(path, np.zeros((2, 16, 16, 3), np.uint8), fps=2)


def write_listing(layout, root, references):
    """The layout's own listing of `(reference, label)` pairs (folders need
    none: the class folders are the listing)."""
    if layout == "csv":
        with open(os.path.join(root, "manifest.csv"), "w") as f:
            f.write("path,label\n")
            f.writelines(f"{r},{label}\n" for r, label in references)
    elif layout == "ucf101":
        lists = os.path.join(root, "ucfTrainTestlist")
        os.makedirs(lists, exist_ok=True)
        with open(os.path.join(lists, "trainlist01.txt"), "w") as f:
            f.writelines(f"{r} 1\n" for r, _ in references)
        open(os.path.join(lists, "testlist01.txt"), "w").close()


class LinkedVideoLayoutsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.base = self.get_temp_dir()
        self.elsewhere = os.path.join(self.base, "other_disk")
        for label in CLASSES:
            for name in CLIPS:
                clip(os.path.join(self.elsewhere, label, name))

    def check(self, data, layout, skipped=0):
        self.assertEqual(data.layout, layout)
        self.assertEqual(data.report.skipped, skipped, data.report.summary())
        self.assertEqual(data.class_names, list(CLASSES))
        found = sorted(
            (labels[0], os.path.basename(p))
            for p, labels in zip(data.paths, data.labels, strict=True)
        )
        self.assertEqual(found, sorted((c, n) for c in CLASSES for n in CLIPS))
        for path, labels in zip(data.paths, data.labels, strict=True):
            with (
                open(path, "rb") as f,
                open(
                    os.path.join(self.elsewhere, labels[0], os.path.basename(path)),
                    "rb",
                ) as g,
            ):
                self.assertEqual(f.read(), g.read())

    def listing(self, root):
        return [(f"{c}/{n}", c) for c in CLASSES for n in CLIPS]

    def test_linked_class_folders(self):
        for layout in ("folders", "csv", "ucf101"):
            with self.subTest(layout=layout):
                root = os.path.join(self.base, f"folders_{layout}")
                os.makedirs(root)
                for label in CLASSES:
                    os.symlink(
                        os.path.join(self.elsewhere, label), os.path.join(root, label)
                    )
                write_listing(layout, root, self.listing(root))
                data = load_video_data(
                    root, val_fraction=0.0, test_fraction=0.0, verbose=False
                )
                self.check(data, layout)

    def link_each_clip(self, root):
        """`root/<class>/<clip>`: a real folder per class, each clip a link."""
        for label in CLASSES:
            os.makedirs(os.path.join(root, label))
            for name in CLIPS:
                os.symlink(
                    os.path.join(self.elsewhere, label, name),
                    os.path.join(root, label, name),
                )

    def test_linked_clip_files(self):
        for layout in ("folders", "csv", "ucf101"):
            with self.subTest(layout=layout):
                root = os.path.join(self.base, f"files_{layout}")
                self.link_each_clip(root)
                write_listing(layout, root, self.listing(root))
                data = load_video_data(
                    root, val_fraction=0.0, test_fraction=0.0, verbose=False
                )
                self.check(data, layout)

    def test_absolute_and_parent_paths_in_the_manifest(self):
        root = os.path.join(self.base, "absolute")
        os.makedirs(root)
        references = []
        for c in CLASSES:
            absolute = os.path.join(self.elsewhere, c, CLIPS[0])
            parent = os.path.relpath(os.path.join(self.elsewhere, c, CLIPS[1]), root)
            self.assertTrue(parent.startswith(".."))
            references += [(absolute, c), (parent, c)]
        write_listing("csv", root, references)
        data = load_video_data(root, val_fraction=0.0, test_fraction=0.0, verbose=False)
        self.check(data, "csv")

    def test_link_loops_and_dead_links_are_reported_by_name(self):
        root = os.path.join(self.base, "loops")
        self.link_each_clip(root)
        # a folder link back up the tree, a link loop named like a class,
        # a link loop named like a clip, and a dead link
        os.symlink(root, os.path.join(root, "jump", "again"))
        os.symlink("loop_b", os.path.join(root, "loop_a"))
        os.symlink("loop_a", os.path.join(root, "loop_b"))
        os.symlink("x.mp4", os.path.join(root, "run", "y.mp4"))
        os.symlink("y.mp4", os.path.join(root, "run", "x.mp4"))
        os.symlink(
            os.path.join(self.base, "gone.mp4"), os.path.join(root, "run", "dead.mp4")
        )
        data = load_video_data(root, val_fraction=0.0, test_fraction=0.0, verbose=False)
        self.check(data, "folders", skipped=6)
        self.assertEqual(
            dict(data.report.entries),
            {
                os.path.join(root, "jump", "again"): "symbolic link loop",
                os.path.join(root, "loop_a"): "symbolic link loop",
                os.path.join(root, "loop_b"): "symbolic link loop",
                os.path.join("run", "x.mp4"): "symbolic link loop",
                os.path.join("run", "y.mp4"): "symbolic link loop",
                os.path.join("run", "dead.mp4"): "broken symbolic link",
            },
        )
