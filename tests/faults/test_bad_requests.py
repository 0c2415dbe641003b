"""Faults 4 and 5: bad requests to every exported signature, and concurrent
load on a loaded SavedModel."""

import io
import os
import threading

import numpy as np
import tensorflow as tf
from PIL import Image

from common.testing import TestCase
from tests.exported_models import exported
from tests.faults.test_bad_data import png_claiming


def jpeg(colour=(200, 30, 30), size=(40, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


class BadRequestsTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        e = exported()
        cls.retrieval = tf.saved_model.load(os.path.join(e.retrieval, "1"))
        cls.index = tf.saved_model.load(os.path.join(e.index, "1"))
        cls.video = tf.saved_model.load(os.path.join(e.video, "1"))
        frames = cls.video.signatures["serving_default"].structured_input_signature
        cls.frame_shape = tuple(frames[1]["frames"].shape[1:])
        cls.gallery = int(cls.index.gallery_info()["size"])

    def refused(self, signature, pattern, **inputs):
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, pattern):
            signature(**inputs)

    def good_requests(self):
        """Every signature still answers a good request."""
        r = self.retrieval.signatures
        out = r["embed_image"](image_bytes=tf.constant([jpeg()]))["embeddings"]
        self.assertEqual(out.shape[0], 1)
        r["embed_text"](text=tf.constant(["a red square"]))
        r["embed_image_pixels"](images=tf.zeros((1, 8, 8, 3), tf.uint8))
        r["score"](image_bytes=tf.constant([jpeg()]), text=tf.constant(["a"]))
        s = self.index.signatures
        s["search_by_text"](text=tf.constant(["a"]), k=tf.constant([1]))
        s["search_by_image"](image_bytes=tf.constant([jpeg()]), k=tf.constant([1]))
        for samples in (800, 1):  # one sample: padded with silence
            out = self.video.signatures["serving_default"](
                frames=tf.zeros((1, *self.frame_shape), tf.uint8),
                audio=tf.zeros((1, samples), tf.float32),
            )
            self.assertTrue(np.isfinite(out["probabilities"].numpy()).all())

    def test_retrieval_signatures(self):
        r = self.retrieval.signatures
        for name in ("embed_image",):
            self.refused(
                r[name],
                "`image_bytes`: an element is not a JPEG",
                image_bytes=tf.constant([jpeg(), b"GIF? no, text"]),
            )
            self.refused(
                r[name],
                "`image_bytes`: an element is not",
                image_bytes=tf.constant([b""]),
            )
            self.refused(
                r[name],
                "`image_bytes` is an empty batch",
                image_bytes=tf.constant([], tf.string),
            )
            self.refused(
                r[name],
                r"Shape of tensor image_bytes \[1,1\] is not compatible"
                r" with expected shape \[\?\]",
                image_bytes=tf.constant([[jpeg()]]),
            )
            self.refused(
                r[name],
                "larger than the 50000000-pixel limit",
                image_bytes=tf.constant([png_claiming(60000, 60000)]),
            )
            # dtype: TensorFlow checks it before the function runs, by position
            self.refused(
                r[name],
                "input #0.*expected to be a string tensor",
                image_bytes=tf.constant([1, 2]),
            )
        self.refused(
            r["embed_text"], "`text` is an empty batch", text=tf.constant([], tf.string)
        )
        self.refused(
            r["embed_text"],
            r"Shape of tensor text \[\] is not compatible",
            text=tf.constant("a"),
        )
        self.refused(
            r["embed_image_pixels"],
            r"Shape of tensor images \[8,8,3\] is not compatible"
            r" with expected shape \[\?,\?,\?,3\]",
            images=tf.zeros((8, 8, 3), tf.uint8),
        )
        self.refused(
            r["embed_image_pixels"],
            r"Shape of tensor images \[1,8,8,4\] is not compatible",
            images=tf.zeros((1, 8, 8, 4), tf.uint8),
        )
        self.refused(
            r["embed_image_pixels"],
            "`images` must have pixels",
            images=tf.zeros((1, 0, 8, 3), tf.uint8),
        )
        self.refused(
            r["embed_image_pixels"],
            "expected to be a uint8 tensor",
            images=tf.zeros((1, 8, 8, 3), tf.float32),
        )
        self.refused(
            r["score"],
            "`image_bytes` and `text` must have the same batch size",
            image_bytes=tf.constant([jpeg(), jpeg()]),
            text=tf.constant(["a"]),
        )
        self.good_requests()

    def test_index_signatures(self):
        s = self.index.signatures
        self.refused(
            s["search_by_text"],
            "`k` is larger than the number of gallery",
            text=tf.constant(["a"]),
            k=tf.constant([self.gallery + 1]),
        )
        self.refused(
            s["search_by_text"],
            "`k` must be at least 1",
            text=tf.constant(["a"]),
            k=tf.constant([0]),
        )
        self.refused(
            s["search_by_text"],
            "`queries` and `k` must have the same batch size",
            text=tf.constant(["a", "b"]),
            k=tf.constant([1]),
        )
        self.refused(
            s["search_by_text"],
            r"Shape of tensor k \[\] is not compatible with expected shape \[\?\]",
            text=tf.constant(["a"]),
            k=tf.constant(1),
        )
        self.refused(
            s["search_by_text"],
            "`text` is an empty batch",
            text=tf.constant([], tf.string),
            k=tf.constant([], tf.int32),
        )
        self.refused(
            s["search_by_image"],
            "`image_bytes`: an element is not",
            image_bytes=tf.constant([b"<html>"]),
            k=tf.constant([1]),
        )
        self.good_requests()

    def test_video_signature(self):
        serve = self.video.signatures["serving_default"]
        t, h, w, c = self.frame_shape
        audio = tf.zeros((1, 800), tf.float32)
        self.refused(
            serve,
            rf"Shape of tensor frames \[1,{t},{h + 1},{w},3\] is not compatible"
            rf" with expected shape \[\?,{t},{h},{w},3\]",
            frames=tf.zeros((1, t, h + 1, w, c), tf.uint8),
            audio=audio,
        )
        self.refused(
            serve,
            r"Shape of tensor frames \[.*\] is not compatible",
            frames=tf.zeros((t, h, w, c), tf.uint8),
            audio=audio,
        )
        one = tf.zeros((1, t, h, w, c), tf.uint8)
        empty = tf.zeros((0, t, h, w, c), tf.uint8)
        for message, frames, audio_in in (
            ("`frames` is an empty batch", empty, tf.zeros((0, 800))),
            (
                "`audio` and `frames` must have the same batch size",
                tf.zeros((2, t, h, w, c), tf.uint8),
                audio,
            ),
            ("`audio` holds NaN or Inf", one, tf.fill((1, 800), np.nan)),
            ("`audio` must hold at least", one, tf.zeros((1, 0))),
            ("expected to be a uint8 tensor", tf.cast(one, tf.float32), audio),
        ):
            with self.subTest(message):
                self.refused(serve, message, frames=frames, audio=audio_in)
        self.good_requests()


class ConcurrentLoadTest(TestCase):
    def test_16_threads_2000_requests_match_sequential_answers(self):
        e = exported()
        loaded = tf.saved_model.load(os.path.join(e.retrieval, "1"))
        embed_text = loaded.signatures["embed_text"]
        embed_pixels = loaded.signatures["embed_image_pixels"]
        rng = np.random.default_rng(0)
        words = ["red", "blue", "circle", "square", "small", "big", "top", "left"]
        requests = []
        for i in range(2000):
            batch = int(rng.choice([1, 2, 5, 8]))
            if i % 2:
                texts = [" ".join(rng.choice(words, 4)) for _ in range(batch)]
                requests.append(("text", texts))
            else:
                pixels = rng.integers(0, 255, (batch, 16, 16, 3), dtype=np.uint8)
                requests.append(("pixels", pixels))

        def answer(request):
            kind, value = request
            if kind == "text":
                return embed_text(text=tf.constant(value))["embeddings"].numpy()
            return embed_pixels(images=tf.constant(value))["embeddings"].numpy()

        sequential = [answer(r) for r in requests]
        results = [None] * len(requests)
        errors = []

        def worker(offset):
            try:
                for i in range(offset, len(requests), 16):
                    results[i] = answer(requests[i])
            except Exception as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        for i, (got, want) in enumerate(zip(results, sequential, strict=True)):
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"request {i}")
