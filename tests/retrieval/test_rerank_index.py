"""The search index's in-graph re-ranking equals `evaluate`'s re-ranking of
the same gallery (NumPy over the Keras model's outputs)."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from common.testing import TestCase
from retrieval.embed import candidate_pairs, embed_images, embed_texts, rerank
from retrieval.export import make_export_archive, rerank_defaults
from retrieval.index import build_index
from retrieval.search import search
from tests.retrieval.test_model import tiny_model

WEIGHT = 5.0  # large, so that the match probability reorders candidates
DEPTH = 3
K = 5
QUERIES = ["a red circle", "a blue square", "red", "a circle", "blue blue", ""]


class RerankIndexTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import tempfile

        cls.tmp = tempfile.mkdtemp()
        rng = np.random.default_rng(0)
        cls.images_dir = os.path.join(cls.tmp, "gallery")
        os.makedirs(cls.images_dir)
        for i in range(12):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(cls.images_dir, f"g{i:02d}.png"))
        keras_seed = 3
        import keras

        keras.utils.set_random_seed(keras_seed)
        cls.model = tiny_model()
        cls.model_dir = os.path.join(cls.tmp, "model", "1")
        archive = make_export_archive(
            cls.model, 32, rerank_weight=WEIGHT, rerank_top_k=DEPTH
        )
        archive.write_out(cls.model_dir, verbose=False)
        (cls.index_dir,) = build_index(
            cls.model_dir, cls.images_dir, os.path.join(cls.tmp, "index"), verbose=False
        )
        cls.index = tf.saved_model.load(cls.index_dir)

    def reference(self, depth, regions_dtype=np.float16):
        """evaluate's re-ranking: candidates by cosine, then cosine + w x match."""
        paths = sorted(
            os.path.join(self.images_dir, n) for n in os.listdir(self.images_dir)
        )
        image_embeddings, regions = embed_images(self.model, paths, 32, 8, True)
        text_embeddings, tokens, masks = embed_texts(self.model, QUERIES, 8, True)
        similarity = image_embeddings @ text_embeddings.T
        regions = regions.astype(regions_dtype).astype(np.float32)
        image_index, text_index = candidate_pairs(similarity, depth, axis=0)
        match = self.model.match_scores(
            regions[image_index], tokens[text_index], masks[text_index]
        ).numpy()
        reranked = rerank(similarity, image_index, text_index, match, WEIGHT)
        names = np.array([os.path.basename(p) for p in paths])
        order = np.argsort(-reranked, axis=0, kind="stable")[:K].T  # [texts, K]
        fused = np.take_along_axis(reranked.T, order, axis=1)
        fused = np.where(fused > 2.0, fused - 3.0, fused)
        return names[order], fused, similarity, match

    def test_defaults_come_from_the_export(self):
        loaded = tf.saved_model.load(self.model_dir)
        self.assertEqual(rerank_defaults(loaded), (WEIGHT, DEPTH))
        info = self.index.gallery_info()
        self.assertEqual(int(info["rerank_depth"]), DEPTH)
        self.assertAlmostEqual(float(info["rerank_weight"]), WEIGHT)
        # 2x2 regions x 16 dims x 2 bytes (float16).
        self.assertEqual(int(info["region_bytes_per_image"]), 4 * 16 * 2)

    def test_search_by_text_equals_evaluate_reranking(self):
        ids, fused, similarity, _ = self.reference(DEPTH)
        out = self.index.signatures["search_by_text"](
            text=tf.constant(QUERIES), k=tf.constant([K] * len(QUERIES))
        )
        got = np.array([[i.decode() for i in row] for row in out["ids"].numpy()])
        np.testing.assert_array_equal(got, ids)
        np.testing.assert_allclose(out["scores"].numpy(), fused, atol=1e-4)
        # The re-ranking changed some order, so the comparison above tests it.
        cosine_order = np.argsort(-similarity, axis=0)[:K].T
        names = np.array(sorted(os.listdir(self.images_dir)))
        self.assertTrue((names[cosine_order] != got).any())

    def test_float16_regions_barely_move_the_match(self):
        _, _, _, match16 = self.reference(DEPTH, np.float16)
        _, _, _, match32 = self.reference(DEPTH, np.float32)
        np.testing.assert_allclose(match16, match32, atol=2e-3)

    def test_depth_per_query(self):
        signature = self.index.signatures["search_by_text_reranked"]
        n = len(QUERIES)
        for depth in (0, 1, DEPTH, 12):
            ids, fused, _, _ = self.reference(depth) if depth else (None,) * 4
            out = signature(
                text=tf.constant(QUERIES),
                k=tf.constant([K] * n),
                rerank_depth=tf.constant([depth] * n),
            )
            got = np.array([[i.decode() for i in row] for row in out["ids"].numpy()])
            if depth:
                np.testing.assert_array_equal(got, ids, err_msg=f"depth {depth}")
                np.testing.assert_allclose(out["scores"].numpy(), fused, atol=1e-4)
            else:
                _, _, similarity, _ = self.reference(1)
                names = np.array(sorted(os.listdir(self.images_dir)))
                cosine = np.argsort(-similarity, axis=0)[:K].T
                np.testing.assert_array_equal(got, names[cosine])
                np.testing.assert_allclose(
                    out["scores"].numpy(),
                    np.take_along_axis(similarity.T, cosine, 1),
                    atol=1e-5,
                )
        # Mixed depths in one batch: each query as if alone.
        out = signature(
            text=tf.constant(QUERIES[:2]),
            k=tf.constant([K, K]),
            rerank_depth=tf.constant([DEPTH, 0]),
        )
        ids, _, similarity, _ = self.reference(DEPTH)
        got = [[i.decode() for i in row] for row in out["ids"].numpy()]
        self.assertEqual(got[0], ids[0].tolist())
        names = np.array(sorted(os.listdir(self.images_dir)))
        self.assertEqual(got[1], names[np.argsort(-similarity[:, 1])[:K]].tolist())

    def test_search_command_and_cosine_only_index(self):
        ids, _, _, _ = self.reference(DEPTH)
        results, _ = search(self.index_dir, QUERIES[0], k=K)
        self.assertEqual([i for i, _ in results], ids[0].tolist())
        (plain_dir,) = build_index(
            self.model_dir,
            self.images_dir,
            os.path.join(self.tmp, "plain"),
            rerank_depth=0,
            verbose=False,
        )
        plain = tf.saved_model.load(plain_dir)
        self.assertEqual(int(plain.gallery_info()["region_bytes_per_image"]), 0)
        self.assertNotIn("search_by_text_reranked", plain.signatures)
        with self.assertRaisesRegex(ValueError, "--rerank-depth must be 0 or more"):
            search(self.index_dir, QUERIES[0], k=K, rerank_depth=-1)
