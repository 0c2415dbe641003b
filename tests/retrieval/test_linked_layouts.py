"""Every retrieval layout loads as users lay data out: an image folder that is
a symbolic link to another disk, image files that are links (git-annex, DVC),
and manifests that name absolute paths or `..`. Link loops, broken links and
image types TensorFlow cannot decode are skipped and reported by name."""

import json
import os

import numpy as np
from PIL import Image

from common.testing import TestCase
from retrieval.data import load_retrieval_data
from retrieval.pipeline import image_dataset
from tests.retrieval.helpers import write_image

NAMES = ["a.jpg", "b.jpg", "c.jpg"]
LAYOUTS = ("kaggle", "flickr8k", "karpathy", "coco", "jsonl")
# The image folder each layout looks for, relative to the data root.
FOLDERS = {
    "kaggle": "Images",
    "flickr8k": "Flicker8k_Dataset",
    "karpathy": "images",
    "coco": "train2017",
    "jsonl": "pics",
}


def write_manifest(layout, root, references):
    """The layout's caption file naming `references` (one caption each,
    "caption of <basename>"); returns the path to give `load_retrieval_data`."""
    captions = [f"caption of {os.path.basename(r)}" for r in references]
    pairs = list(zip(references, captions, strict=True))
    if layout == "kaggle":
        path = os.path.join(root, "captions.txt")
        with open(path, "w") as f:
            f.write("image,caption\n")
            f.writelines(f"{r},{c}\n" for r, c in pairs)
    elif layout == "flickr8k":
        path = os.path.join(root, "Flickr8k.token.txt")
        with open(path, "w") as f:
            f.writelines(f"{r}#0\t{c}\n" for r, c in pairs)
    elif layout == "karpathy":
        path = os.path.join(root, "dataset_flickr8k.json")
        images = [
            {"filename": r, "split": "train", "sentences": [{"raw": c}]}
            for r, c in pairs
        ]
        with open(path, "w") as f:
            json.dump({"images": images}, f)
    elif layout == "coco":
        os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
        path = os.path.join(root, "annotations", "captions_train2017.json")
        coco = {
            "images": [{"id": i, "file_name": r} for i, (r, _) in enumerate(pairs)],
            "annotations": [
                {"image_id": i, "caption": c} for i, (_, c) in enumerate(pairs)
            ],
        }
        with open(path, "w") as f:
            json.dump(coco, f)
    else:
        path = os.path.join(root, "manifest.jsonl")
        with open(path, "w") as f:
            f.writelines(
                json.dumps({"image": r, "caption": c}) + "\n" for r, c in pairs
            )
    return root


def reference(layout, name):
    """How the layout's caption file names an image in its image folder."""
    return os.path.join("pics", name) if layout == "jsonl" else name


class LinkedLayoutsTest(TestCase):
    def setUp(self):
        super().setUp()
        self.base = self.get_temp_dir()
        self.elsewhere = os.path.join(self.base, "other_disk", "photos")
        for name in NAMES:
            write_image(os.path.join(self.elsewhere, name))

    def check(self, data, layout, expected_dir):
        self.assertEqual(data.layout, layout)
        self.assertEqual(data.report.skipped, 0, data.report.summary())
        self.assertEqual(sorted(os.path.basename(p) for p in data.images), NAMES)
        for path, captions in zip(data.images, data.captions, strict=True):
            self.assertEqual(captions, [f"caption of {os.path.basename(path)}"])
            self.assertEqual(os.path.dirname(path), expected_dir)
            # the path reads the same pixels as the original file
            original = os.path.join(self.elsewhere, os.path.basename(path))
            np.testing.assert_array_equal(
                np.asarray(Image.open(path)), np.asarray(Image.open(original))
            )

    def test_linked_image_folder(self):
        for layout in LAYOUTS:
            with self.subTest(layout=layout):
                root = os.path.join(self.base, f"linked_folder_{layout}")
                os.makedirs(root)
                folder = os.path.join(root, FOLDERS[layout])
                os.symlink(self.elsewhere, folder)
                write_manifest(layout, root, [reference(layout, n) for n in NAMES])
                data = load_retrieval_data(root, verbose=False)
                self.check(data, layout, folder)

    def test_linked_image_files(self):
        for layout in LAYOUTS:
            with self.subTest(layout=layout):
                root = os.path.join(self.base, f"linked_files_{layout}")
                folder = os.path.join(root, FOLDERS[layout])
                os.makedirs(folder)
                for name in NAMES:
                    os.symlink(
                        os.path.join(self.elsewhere, name), os.path.join(folder, name)
                    )
                write_manifest(layout, root, [reference(layout, n) for n in NAMES])
                data = load_retrieval_data(root, verbose=False)
                self.check(data, layout, folder)

    def test_absolute_and_parent_paths_in_the_manifest(self):
        for layout in LAYOUTS:
            with self.subTest(layout=layout):
                root = os.path.join(self.base, f"absolute_{layout}")
                os.makedirs(os.path.join(root, FOLDERS[layout]))
                references = [
                    os.path.join(self.elsewhere, "a.jpg"),  # absolute
                    os.path.join(self.elsewhere, "b.jpg"),
                    # `..` out of the image folder (jsonl: out of the root)
                    os.path.relpath(
                        os.path.join(self.elsewhere, "c.jpg"),
                        root
                        if layout == "jsonl"
                        else os.path.join(root, FOLDERS[layout]),
                    ),
                ]
                self.assertTrue(references[2].startswith(".."))
                write_manifest(layout, root, references)
                data = load_retrieval_data(root, verbose=False)
                self.check(data, layout, self.elsewhere)

    def test_missing_targets_loops_and_undecodable_types_are_reported(self):
        root = os.path.join(self.base, "bad_links")
        folder = os.path.join(root, "Images")
        os.makedirs(folder)
        for name in NAMES:
            os.symlink(os.path.join(self.elsewhere, name), os.path.join(folder, name))
        os.symlink(
            os.path.join(self.base, "gone.jpg"), os.path.join(folder, "dead.jpg")
        )
        os.symlink("loop_b.jpg", os.path.join(folder, "loop_a.jpg"))
        os.symlink("loop_a.jpg", os.path.join(folder, "loop_b.jpg"))
        pixels = np.full((12, 16, 3), 90, np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, "scan.tif"), format="TIFF")
        Image.fromarray(pixels).save(
            os.path.join(folder, "tiff_named.jpg"), format="TIFF"
        )
        Image.fromarray(pixels).save(os.path.join(folder, "photo.webp"), format="WEBP")
        references = NAMES + [
            "dead.jpg",
            "loop_a.jpg",
            "scan.tif",
            "tiff_named.jpg",
            "photo.webp",
            os.path.join(self.base, "nowhere", "absent.jpg"),
        ]
        write_manifest("kaggle", root, references)
        data = load_retrieval_data(root, verbose=False)
        self.assertEqual(
            sorted(os.path.basename(p) for p in data.images), NAMES + ["photo.webp"]
        )
        entries = dict(data.report.entries)
        self.assertEqual(
            entries,
            {
                "dead.jpg": "broken symbolic link",
                "loop_a.jpg": "symbolic link loop",
                "scan.tif": "unsupported image type (TIFF)",
                "tiff_named.jpg": "unsupported image type (TIFF)",
                os.path.join(self.base, "nowhere", "absent.jpg"): "missing image",
            },
        )
        self.assertEqual(len(data.report.entries), 5)  # each once
        # every kept image, the WebP included, decodes in the pipeline
        batches = list(image_dataset(data.images, 32, 8))
        self.assertEqual(sum(len(b) for b in batches), 4)
        webp = data.images.index(os.path.join(folder, "photo.webp"))
        first = np.concatenate([b.numpy() for b in batches])[webp]
        np.testing.assert_allclose(first.mean(axis=(0, 1)), [90, 90, 90], atol=2)


class GalleryListingTest(TestCase):
    def test_gallery_follows_links_and_names_what_it_cannot_read(self):
        from common.data import SkipReport
        from retrieval.gallery import list_gallery

        base = self.get_temp_dir()
        gallery = os.path.join(base, "gallery")
        elsewhere = os.path.join(base, "disk2")
        for name in ("a.jpg", "b.png"):
            write_image(os.path.join(gallery, name))
        write_image(os.path.join(elsewhere, "c.jpg"))
        os.symlink(elsewhere, os.path.join(gallery, "more"))
        os.symlink(gallery, os.path.join(elsewhere, "back"))  # a loop
        pixels = np.full((8, 8, 3), 50, np.uint8)
        Image.fromarray(pixels).save(os.path.join(gallery, "d.webp"), format="WEBP")
        Image.fromarray(pixels).save(os.path.join(gallery, "e.tif"), format="TIFF")
        with open(os.path.join(gallery, "notes.txt"), "w") as f:
            f.write("not an image")
        report = SkipReport(gallery)
        files = list_gallery(gallery, "*", report)
        self.assertEqual(
            [os.path.relpath(f, gallery) for f in files],
            ["a.jpg", "b.png", "d.webp", os.path.join("more", "c.jpg")],
        )
        self.assertEqual(
            dict(report.entries),
            {
                os.path.join(gallery, "e.tif"): "not a readable image type (.tif)",
                os.path.join(gallery, "notes.txt"): "not a readable image type (.txt)",
                os.path.join(gallery, "more", "back"): "symbolic link loop",
            },
        )
