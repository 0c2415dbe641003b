import os

import numpy as np

from common.data.video import write_clip
from common.testing import TestCase
from video_understanding.data import load_video_data


def clip(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return write_clip(path, np.zeros((2, 16, 16, 3), np.uint8), fps=2)


class VideoLayoutsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()

    def test_class_folders_with_seeded_split(self):
        for label in ("jump", "run"):
            for i in range(5):
                clip(os.path.join(self.root, label, f"{i}.mp4"))
        os.makedirs(os.path.join(self.root, "walk"))
        open(os.path.join(self.root, "run", "notes.txt"), "w").close()
        data = load_video_data(
            self.root, seed=1, val_fraction=0.2, test_fraction=0.2, verbose=False
        )
        self.assertEqual(data.layout, "folders")
        self.assertEqual(data.class_names, ["jump", "run"])
        self.assertEqual(sum(data.counts().values()), 10)
        again = load_video_data(
            self.root, seed=1, val_fraction=0.2, test_fraction=0.2, verbose=False
        )
        self.assertEqual(data.splits, again.splits)
        paths, labels = data.subset("train")
        np.testing.assert_array_equal(
            data.targets(labels), [data.class_names.index(ls[0]) for ls in labels]
        )

    def test_csv_manifest_multi_label_and_bad_rows(self):
        for name in ("a", "b", "c", "d", "e"):
            clip(os.path.join(self.root, "clips", f"{name}.mp4"))
        open(os.path.join(self.root, "clips", "empty.mp4"), "wb").close()
        rows = [
            "path,label,split",
            "clips/a.mp4,dog|bark,train",
            "clips/b.mp4,dog,train",
            "clips/c.mp4,cat,test",  # label unseen in training
            "clips/d.mp4,bark,test",
            "clips/d.mp4,bark,test",  # duplicate row
            "clips/e.mp4,,train",  # no label
            "../outside.mp4,dog,train",  # the user's own path: kept
            "clips/missing.mp4,dog,train",
            "clips/empty.mp4,dog,train",
        ]
        with open(os.path.join(self.root, "manifest.csv"), "w") as f:
            f.write("\n".join(rows) + "\n")
        clip(os.path.join(os.path.dirname(self.root), "outside.mp4"))
        data = load_video_data(self.root, verbose=False)
        self.assertEqual(data.layout, "csv")
        self.assertTrue(data.multi_label)
        self.assertEqual(data.class_names, ["bark", "dog"])
        self.assertEqual(
            [os.path.basename(p) for p in data.paths],
            ["a.mp4", "b.mp4", "d.mp4", "outside.mp4"],
        )
        counts = data.report.counts
        for reason in (
            "label unseen in training",
            "duplicate row",
            "clip without a label",
            "missing clip",
            "empty clip file",
        ):
            self.assertEqual(counts[reason], 1, reason)
        np.testing.assert_array_equal(
            data.targets(data.labels), [[1, 1], [0, 1], [1, 0], [0, 1]]
        )

    def test_ucf101_split_lists(self):
        for label in ("ApplyLipstick", "Archery"):
            for group in (1, 2):
                clip(os.path.join(self.root, label, f"v_{label}_g0{group}_c01.avi"))
        lists = os.path.join(self.root, "ucfTrainTestlist")
        os.makedirs(lists)
        with open(os.path.join(lists, "trainlist01.txt"), "w") as f:
            f.write(
                "ApplyLipstick/v_ApplyLipstick_g01_c01.avi 1\n"
                "Archery/v_Archery_g01_c01.avi 2\n"
            )
        with open(os.path.join(lists, "testlist01.txt"), "w") as f:
            f.write(
                "ApplyLipstick/v_ApplyLipstick_g02_c01.avi\n"
                "Archery/v_Archery_g02_c01.avi\n"
            )
        data = load_video_data(self.root, val_fraction=0.0, verbose=False)
        self.assertEqual(data.layout, "ucf101")
        self.assertEqual(data.counts(), {"train": 2, "val": 0, "test": 2})
        with self.assertRaisesRegex(FileNotFoundError, "trainlist02.txt"):
            load_video_data(self.root, split_index=2, verbose=False)

    def test_all_bad_is_an_error(self):
        with open(os.path.join(self.root, "manifest.csv"), "w") as f:
            f.write("path,label\nnope.mp4,dog\n")
        with self.assertRaisesRegex(ValueError, "No usable clip.*missing clip"):
            load_video_data(self.root, verbose=False)
        with self.assertRaisesRegex(ValueError, "header 'path,label"):
            with open(os.path.join(self.root, "manifest.csv"), "w") as f:
                f.write("file,class\nx.mp4,dog\n")
            load_video_data(self.root, verbose=False)
