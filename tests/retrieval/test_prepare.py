"""`retrieval prepare`: TFRecord shards that hold exactly the dataset, read
back by training, evaluation and gallery pipelines like the files."""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from common.testing import TestCase
from retrieval.__main__ import main
from retrieval.data import load_retrieval_data
from retrieval.demo_data import generate_demo_data
from retrieval.pipeline import image_dataset, training_dataset
from retrieval.prepare import prepare
from retrieval.records import PreparedImages


def digest(array):
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


class PrepareTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile

        cls.tmp = tempfile.mkdtemp()
        cls.data = os.path.join(cls.tmp, "data")
        generate_demo_data(cls.data, num_train=21, num_val=5, num_test=6, seed=3)
        cls.prepared = os.path.join(cls.tmp, "prepared")
        code = main(
            ["prepare", "--data", cls.data, "--output", cls.prepared]
            + ["--shard-size", "4"]
        )
        assert code == 0

    def test_shards_hold_every_image_and_caption_once(self):
        original = load_retrieval_data(self.data, verbose=False)
        with open(os.path.join(self.prepared, "prepare.json")) as f:
            metadata = json.load(f)
        self.assertEqual(metadata["counts"], original.counts())
        # 21 train images in shards of 4 -> 6 files, the last with 1
        self.assertEqual(len(metadata["shards"]["train"]), 6)
        for split in ("train", "val", "test"):
            paths, captions = original.subset(split)
            expected = {
                os.path.relpath(p, original.root): (open(p, "rb").read(), c)
                for p, c in zip(paths, captions, strict=True)
            }
            found = {}
            for name in metadata["shards"][split]:
                for raw in tf.data.TFRecordDataset(os.path.join(self.prepared, name)):
                    f = tf.train.Example.FromString(raw.numpy()).features.feature
                    image_id = f["id"].bytes_list.value[0].decode()
                    self.assertNotIn(image_id, found)
                    found[image_id] = (
                        f["image"].bytes_list.value[0],
                        [c.decode() for c in f["captions"].bytes_list.value],
                    )
            self.assertEqual(found, expected, split)

    def test_prepared_folder_loads_as_data_with_the_same_splits(self):
        original = load_retrieval_data(self.data, verbose=False)
        prepared = load_retrieval_data(self.prepared, verbose=False)
        self.assertEqual(prepared.layout, "prepared")
        self.assertEqual(prepared.root, original.root)
        for split in ("train", "val", "test"):
            paths, captions = original.subset(split)
            images, texts = prepared.subset(split)
            self.assertIsInstance(images, PreparedImages)
            by_id = dict(zip(images.ids, texts, strict=True))
            self.assertEqual(
                by_id,
                {
                    os.path.relpath(p, original.root): c
                    for p, c in zip(paths, captions, strict=True)
                },
            )

    def test_image_dataset_reads_shards_in_id_order(self):
        prepared = load_retrieval_data(self.prepared, verbose=False)
        images, _ = prepared.subset("train")
        batches = list(image_dataset(images, 24, batch_size=5))
        self.assertEqual([len(b) for b in batches], [5, 5, 5, 5, 1])
        pixels = np.concatenate([b.numpy() for b in batches])
        # independent decode: PIL, then TF's resize on the same pixels
        for i in (0, 7, 20):
            path = os.path.join(prepared.root, images.ids[i])
            raw = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
            resized = tf.image.resize(raw, (24, 24), antialias=True).numpy()
            np.testing.assert_allclose(pixels[i], np.round(resized), atol=8)
        files = [os.path.join(prepared.root, i) for i in images.ids]
        from_files = np.concatenate([b.numpy() for b in image_dataset(files, 24, 5)])
        np.testing.assert_array_equal(pixels, from_files)

    def test_each_epoch_depends_on_its_number_only(self):
        # What a run resumed at epoch 2 reads is epoch 2 of the uninterrupted
        # stream: order, captions and crops.
        for data_path, cache in (
            (self.data, "none"),
            (self.data, "memory"),
            (self.prepared, "none"),
            (self.prepared, "memory"),
        ):
            images, captions = load_retrieval_data(data_path, verbose=False).subset(
                "train"
            )

            def epochs(first, images=images, captions=captions, cache=cache):
                stream = training_dataset(
                    images, captions, 24, 7, augment=True, cache=cache, seed=4,
                    first_epoch=first, epochs=3, steps_per_epoch=3,
                )  # fmt: skip
                return [(p.numpy(), t.numpy()) for p, t in stream]

            full, resumed = epochs(0), epochs(2)
            self.assertEqual(len(full), 9)
            self.assertEqual(len(resumed), 3)
            for (a, ta), (b, tb) in zip(full[6:], resumed, strict=True):
                np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(ta, tb)
            orders = [
                tuple(digest(p) for p, _ in full[3 * e : 3 * e + 3]) for e in (0, 1, 2)
            ]
            self.assertEqual(len(set(orders)), 3, (data_path, cache))

    def test_training_epoch_from_shards_equals_one_from_files(self):
        original = load_retrieval_data(self.data, verbose=False)
        prepared = load_retrieval_data(self.prepared, verbose=False)
        epochs = []
        for data, cache in (
            (original, "none"),
            (prepared, "none"),
            (prepared, "memory"),
        ):
            images, captions = data.subset("train")
            dataset = training_dataset(
                images,
                captions,
                24,
                21,
                cache=cache,
                seed=1,
                drop_remainder=False,
                epochs=2,
            )
            seen = {}
            # one batch per epoch, two epochs
            for epoch, (pixels, texts) in enumerate(dataset.take(2)):
                self.assertEqual(len(pixels), 21)
                for image, text in zip(pixels.numpy(), texts.numpy(), strict=True):
                    seen.setdefault(digest(image), set()).add(text.decode())
                if epoch == 0:
                    first = [digest(p) for p in pixels.numpy()]
                else:  # reshuffled each epoch
                    self.assertNotEqual(first, [digest(p) for p in pixels.numpy()])
            epochs.append(seen)
            # every text is a caption of its image
            by_image = {}
            for path, texts in zip(*original.subset("train"), strict=True):
                raw = tf.io.read_file(path)
                from common.data import decode_and_resize

                by_image[digest(decode_and_resize(raw, 24).numpy())] = set(texts)
            for key, texts in seen.items():
                self.assertLessEqual(texts, by_image[key])
        self.assertEqual(set(epochs[0]), set(epochs[1]))
        self.assertEqual(set(epochs[0]), set(epochs[2]))

    def test_rerun_keeps_finished_shards_and_writes_missing_ones(self):
        folder = os.path.join(self.get_temp_dir(), "again")
        prepare(self.data, folder, shard_size=8, verbose=False)
        keep = os.path.join(folder, "train-00000-of-00003.tfrecord")
        lost = os.path.join(folder, "train-00002-of-00003.tfrecord")
        os.utime(keep, (1, 1))
        size = os.path.getsize(lost)
        os.remove(lost)
        prepare(self.data, folder, shard_size=8, verbose=False)
        self.assertEqual(os.path.getmtime(keep), 1)
        self.assertEqual(os.path.getsize(lost), size)
        self.assertFalse([n for n in os.listdir(folder) if n.startswith(".")])
        with self.assertRaisesRegex(ValueError, "other data or settings"):
            prepare(self.data, folder, shard_size=4, verbose=False)
