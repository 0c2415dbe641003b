import json
import os

import numpy as np

from common.testing import TestCase
from retrieval.data import load_retrieval_data
from retrieval.layouts import detect_layout
from retrieval.pipeline import flatten_captions, training_dataset
from tests.retrieval.helpers import write_image


class LayoutsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()

    def images(self, folder, names):
        for name in names:
            write_image(os.path.join(folder, name))

    def test_kaggle_captions_csv_with_quoted_commas(self):
        self.images(os.path.join(self.root, "Images"), ["a.jpg", "b.jpg", "c.jpg"])
        with open(os.path.join(self.root, "captions.txt"), "w") as f:
            f.write("image,caption\n")
            f.write('a.jpg,"A dog , running ."\n')
            f.write("a.jpg,A brown dog\n")
            f.write("b.jpg,Two cats\n")
            f.write("c.jpg,A bird\n")
        data = load_retrieval_data(self.root, verbose=False)
        self.assertEqual(data.layout, "kaggle")
        self.assertEqual(len(data.images), 3)
        index = [os.path.basename(p) for p in data.images].index("a.jpg")
        self.assertEqual(data.captions[index], ["A dog , running .", "A brown dog"])
        self.assertEqual(sum(data.counts().values()), 3)

    def test_flickr8k_token_file_with_official_splits(self):
        folder = os.path.join(self.root, "Flicker8k_Dataset")
        self.images(folder, ["1.jpg", "2.jpg", "3.jpg"])
        with open(os.path.join(self.root, "Flickr8k.token.txt"), "w") as f:
            for name in ("1.jpg", "2.jpg", "3.jpg"):
                for n in range(2):
                    f.write(f"{name}#{n}\tcaption {n} of {name}\n")
        for split, name in (("train", "1.jpg"), ("dev", "2.jpg"), ("test", "3.jpg")):
            with open(
                os.path.join(self.root, f"Flickr_8k.{split}Images.txt"), "w"
            ) as f:
                f.write(name + "\n")
        data = load_retrieval_data(self.root, verbose=False)
        self.assertEqual(data.layout, "flickr8k")
        splits = {
            os.path.basename(p): s
            for p, s in zip(data.images, data.splits, strict=True)
        }
        self.assertEqual(splits, {"1.jpg": "train", "2.jpg": "val", "3.jpg": "test"})
        self.assertEqual(data.captions[0], ["caption 0 of 1.jpg", "caption 1 of 1.jpg"])

    def test_karpathy_json(self):
        self.images(os.path.join(self.root, "images"), ["x.jpg", "y.jpg"])
        dataset = {
            "images": [
                {
                    "filename": "x.jpg",
                    "split": "restval",
                    "sentences": [{"raw": "a red car"}, {"raw": "a car"}],
                },
                {
                    "filename": "y.jpg",
                    "split": "test",
                    "sentences": [{"raw": "a tree"}],
                },
            ]
        }
        with open(os.path.join(self.root, "dataset_flickr8k.json"), "w") as f:
            json.dump(dataset, f)
        data = load_retrieval_data(self.root, verbose=False)
        self.assertEqual(data.layout, "karpathy")
        self.assertEqual(data.splits[:2], ["train", "test"])
        self.assertEqual(data.captions[0], ["a red car", "a car"])

    def test_coco_captions_json(self):
        self.images(os.path.join(self.root, "val2017"), ["000001.jpg", "000002.jpg"])
        os.makedirs(os.path.join(self.root, "annotations"))
        coco = {
            "images": [
                {"id": 1, "file_name": "000001.jpg"},
                {"id": 2, "file_name": "000002.jpg"},
            ],
            "annotations": [
                {"image_id": 1, "caption": "a plane"},
                {"image_id": 2, "caption": "a boat"},
                {"image_id": 2, "caption": "a ship"},
                {"image_id": 9, "caption": "orphan"},
            ],
        }
        with open(
            os.path.join(self.root, "annotations", "captions_val2017.json"), "w"
        ) as f:
            json.dump(coco, f)
        data = load_retrieval_data(self.root, verbose=False)
        self.assertEqual(data.layout, "coco")
        self.assertEqual(data.captions, [["a plane"], ["a boat", "a ship"]])
        self.assertEqual(data.report.counts["caption of an unknown image id"], 1)
        # val from COCO's own split; test carved from nothing -> only val and train
        self.assertIn("val", data.splits)

    def test_jsonl_manifest_accepts_absolute_and_parent_paths(self):
        self.images(os.path.join(self.root, "pics"), ["ok.png"])
        outside = os.path.join(os.path.dirname(self.root), "outside.jpg")
        write_image(outside)
        lines = [
            {"image": "pics/ok.png", "caption": "fine", "split": "train"},
            {"image": "../outside.jpg", "caption": "from the parent folder"},
            {
                "image": os.path.abspath(os.path.join(self.root, "pics/ok.png")),
                "caption": "absolute",
            },
            {"image": "../missing.jpg", "caption": "not there"},
            {"caption": "no image"},
        ]
        path = os.path.join(self.root, "manifest.jsonl")
        with open(path, "w") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
            f.write("{not json\n")
        data = load_retrieval_data(path, verbose=False)
        self.assertEqual(data.layout, "jsonl")
        by_path = dict(zip(data.images, data.captions, strict=True))
        self.assertEqual(
            by_path,
            {
                os.path.join(self.root, "pics", "ok.png"): ["fine", "absolute"],
                outside: ["from the parent folder"],
            },
        )
        missing = os.path.join(os.path.dirname(self.root), "missing.jpg")
        self.assertEqual(dict(data.report.entries)[missing], "missing image")
        self.assertEqual(data.report.counts["record without image or caption"], 1)
        self.assertEqual(data.report.counts["malformed line"], 1)

    def test_unknown_layout_and_missing_path(self):
        with self.assertRaisesRegex(ValueError, "No known dataset layout"):
            detect_layout(self.root)
        with self.assertRaisesRegex(FileNotFoundError, "nowhere"):
            detect_layout(os.path.join(self.root, "nowhere"))


class BadRecordsTest(TestCase):
    def test_bad_records_are_skipped_counted_and_reported(self):
        root = self.get_temp_dir()
        images = os.path.join(root, "Images")
        for name in ("good1.jpg", "good2.jpg"):
            write_image(os.path.join(images, name))
        write_image(os.path.join(images, "gray.png"), mode="L")
        write_image(os.path.join(images, "big.jpg"), size=(300, 300))
        with open(os.path.join(images, "empty.jpg"), "wb"):
            pass
        with open(os.path.join(images, "good1.jpg"), "rb") as f:
            jpeg = f.read()
        with open(os.path.join(images, "truncated.jpg"), "wb") as f:
            f.write(jpeg[: len(jpeg) // 2])
        with open(os.path.join(images, "text.jpg"), "w") as f:
            f.write("not an image")
        with open(os.path.join(root, "captions.txt"), "wb") as f:
            f.write(b"image,caption\n")
            for name in (
                "good1.jpg",
                "good2.jpg",
                "gray.png",
                "big.jpg",
                "empty.jpg",
                "truncated.jpg",
                "text.jpg",
                "missing.jpg",
            ):
                f.write(f"{name},a caption for {name}\n".encode())
            f.write(b"good1.jpg,   \n")
            f.write(b"good2.jpg,caf\xe9 latin-1 text\n")
            f.write(b"good2.jpg,a caption for good2.jpg\n")
        data = load_retrieval_data(root, max_image_pixels=200 * 200, verbose=False)
        names = sorted(os.path.basename(p) for p in data.images)
        self.assertEqual(names, ["good1.jpg", "good2.jpg", "gray.png"])
        counts = data.report.counts
        self.assertEqual(counts["missing image"], 1)
        self.assertEqual(counts["empty image file"], 1)
        self.assertEqual(counts["unreadable or corrupt image"], 2)
        self.assertEqual(counts["image over 40000 pixels"], 1)
        self.assertEqual(counts["empty caption"], 1)
        self.assertEqual(counts["non-UTF-8 text"], 1)
        self.assertEqual(counts["duplicate caption"], 1)
        summary = data.report.summary()
        self.assertIn("missing.jpg", summary)
        self.assertIn("captions.txt:11", summary)

    def test_everything_bad_is_an_error_that_says_why(self):
        root = self.get_temp_dir()
        with open(os.path.join(root, "captions.txt"), "w") as f:
            f.write("image,caption\nnope.jpg,a caption\n")
        with self.assertRaisesRegex(
            ValueError, "No usable.*missing image: 1, e.g. nope.jpg"
        ):
            load_retrieval_data(root, verbose=False)


class SplitAndPipelineTest(TestCase):
    def make_data(self, count=20):
        root = self.get_temp_dir()
        with open(os.path.join(root, "captions.txt"), "w") as f:
            f.write("image,caption\n")
            for i in range(count):
                write_image(
                    os.path.join(root, "Images", f"{i}.jpg"), colour=(10 * i, 0, 0)
                )
                f.write(f"{i}.jpg,first caption {i}\n{i}.jpg,second caption {i}\n")
        return root

    def test_seeded_split_is_by_image(self):
        root = self.make_data()
        a = load_retrieval_data(
            root, seed=3, val_fraction=0.2, test_fraction=0.2, verbose=False
        )
        b = load_retrieval_data(
            root, seed=3, val_fraction=0.2, test_fraction=0.2, verbose=False
        )
        self.assertEqual(a.splits, b.splits)
        self.assertEqual(a.counts(), {"train": 12, "val": 4, "test": 4})
        for captions in a.captions:  # both captions of an image stay together
            self.assertEqual(len(captions), 2)

    def test_training_batches_hold_distinct_images_and_their_captions(self):
        root = self.make_data(12)
        data = load_retrieval_data(root, val_fraction=0, test_fraction=0, verbose=False)
        images, captions = data.subset("train")
        dataset = training_dataset(images, captions, 32, batch_size=6, seed=1)
        for batch_images, batch_text in dataset.take(2):
            self.assertEqual(tuple(batch_images.shape), (6, 32, 32, 3))
            self.assertEqual(batch_images.dtype.name, "uint8")
            numbers = [int(t.decode().split()[-1]) for t in batch_text.numpy()]
            self.assertEqual(len(set(numbers)), 6)
            # each caption belongs to the image beside it (red channel = 10 * i)
            red = batch_images.numpy()[..., 0].mean(axis=(1, 2))
            np.testing.assert_allclose(red, [10 * n for n in numbers], atol=12)

    def test_flatten_captions(self):
        texts, index = flatten_captions([["a", "b"], ["c"]])
        self.assertEqual(texts, ["a", "b", "c"])
        self.assertEqual(index.tolist(), [0, 0, 1])
