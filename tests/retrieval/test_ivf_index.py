"""The IVF search SavedModel against NumPy: exact with every cluster probed,
recall on a clustered gallery, the int8 error bound, input checks and
signatures; the layout's updates."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from bench.search import VectorEncoder
from common.testing import TestCase
from retrieval.ann import (
    Blocks,
    IndexSettings,
    Int8Quantizer,
    IvfLayout,
    blocked,
    build_layout,
    default_nprobe,
    in_cluster_order,
    unblocked,
    update_layout,
)
from retrieval.ivf_index import IvfSearchIndex
from retrieval.search_index import SearchIndex


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(seed, n, dim=16, centres=12, spread=0.3):
    """Unit vectors around `centres` random directions."""
    rng = np.random.default_rng(seed)
    middle = unit(rng.normal(size=(centres, dim)))
    which = rng.integers(0, centres, n)
    return unit(middle[which] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim))


def numpy_top(queries, gallery, k):
    scores = queries @ gallery.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, 1)


def saved(test, index, signatures=None):
    path = os.path.join(test.get_temp_dir(), "index")
    tf.saved_model.save(index, path, signatures=signatures or index.signature_map())
    return tf.saved_model.load(path), path


def ask(loaded, queries, k, nprobe=None, name="search_by_text"):
    text = tf.constant([q.tobytes() for q in queries])
    batch = [k] * len(queries)
    if nprobe is None:
        out = loaded.signatures[name](text=text, k=tf.constant(batch))
    else:
        out = loaded.signatures[name + "_nprobe"](
            text=text, k=tf.constant(batch), nprobe=tf.constant([nprobe] * len(text))
        )
    ids = [[int(i.decode()[3:]) for i in row] for row in out["ids"].numpy()]
    return np.array(ids), out["scores"].numpy()


def ids_of(n):
    return np.array([f"img{i:05d}" for i in range(n)])


class IvfSearchTest(TestCase):
    def setUp(self):
        super().setUp()
        self.gallery = clustered(0, 600)
        self.queries = clustered(1, 25)

    def index(
        self, codes="float32", nlist=24, nprobe=None, gallery=None, rescore=False
    ):
        gallery = self.gallery if gallery is None else gallery
        ids = ids_of(len(gallery))
        layout = build_layout(gallery, ids, nlist, codes, rescore=rescore)
        encoder = VectorEncoder(gallery.shape[1])
        return IvfSearchIndex(encoder, layout, "/gallery", nprobe=nprobe), layout

    def test_every_cluster_probed_is_exact(self):
        loaded, _ = saved(self, self.index()[0])
        expected, scores = numpy_top(self.queries, self.gallery, 10)
        found, found_scores = ask(loaded, self.queries, 10, nprobe=24)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_allclose(found_scores, scores, atol=1e-5)

    def test_int8_every_cluster_probed_ranks_the_decoded_vectors(self):
        index, layout = self.index("int8")
        loaded, _ = saved(self, index)
        decoded = np.empty_like(self.gallery)
        decoded[[int(i[3:]) for i in layout.ids]] = layout.vectors()
        expected, scores = numpy_top(self.queries, decoded, 10)
        found, found_scores = ask(loaded, self.queries, 10, nprobe=24)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_allclose(found_scores, scores, atol=1e-5)

    def test_int8_rescoring_restores_the_exact_order(self):
        expected, scores = numpy_top(self.queries, self.gallery, 10)
        loaded, _ = saved(self, self.index("int8")[0])
        int8_found, _ = ask(loaded, self.queries, 10, nprobe=24)
        # the int8 scores alone misorder some near ties ...
        self.assertFalse(np.array_equal(int8_found, expected))
        index, layout = self.index("int8", rescore=True)
        self.assertEqual(int(index.gallery_info()["rescore"]), 4)
        loaded, _ = saved(self, index)
        # ... the float32 vectors, kept, put them back in the exact order
        found, found_scores = ask(loaded, self.queries, 10, nprobe=24)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_allclose(found_scores, scores, atol=1e-5)
        # and at the default nprobe, k larger than a cluster included
        found, _ = ask(loaded, self.queries[:3], 200)
        self.assertEqual(found.shape, (3, 200))
        self.assertEqual(len(set(found[0].tolist())), 200)

    def test_int8_scores_within_the_quantization_bound(self):
        quantizer = Int8Quantizer.fit(self.gallery)
        decoded = quantizer.decode(quantizer.encode(self.gallery))
        self.assertLessEqual(
            np.abs(decoded - self.gallery).max(), quantizer.scale.max() / 2 + 1e-6
        )
        index, _ = self.index("int8")
        loaded, _ = saved(self, index)
        found, found_scores = ask(loaded, self.queries, 5, nprobe=24)
        exact = np.take_along_axis(self.queries @ self.gallery.T, found, 1)
        bound = np.abs(self.queries) @ (quantizer.scale / 2) + 1e-5
        self.assertTrue(np.all(np.abs(found_scores - exact) <= bound[:, None]))

    def test_recall_at_the_default_nprobe(self):
        loaded, _ = saved(self, self.index()[0])
        self.assertEqual(default_nprobe(24), 8)
        expected, _ = numpy_top(self.queries, self.gallery, 10)
        found, _ = ask(loaded, self.queries, 10)
        recall = np.mean(
            [len(set(a) & set(b)) / 10 for a, b in zip(found, expected, strict=True)]
        )
        self.assertGreaterEqual(recall, 0.9)
        # one cluster misses some of them, all clusters none
        one, _ = ask(loaded, self.queries, 10, nprobe=1)
        recall_one = np.mean(
            [len(set(a) & set(b)) / 10 for a, b in zip(one, expected, strict=True)]
        )
        self.assertLess(recall_one, recall)

    def test_probes_more_clusters_when_they_hold_fewer_than_k(self):
        loaded, _ = saved(self, self.index(nlist=60)[0])
        found, scores = ask(loaded, self.queries[:3], 200, nprobe=1)
        self.assertEqual(found.shape, (3, 200))
        self.assertTrue(np.all(np.isfinite(scores)))
        for row in found:
            self.assertEqual(len(set(row.tolist())), 200)

    def test_bad_nprobe_and_k_are_refused_by_name(self):
        loaded, _ = saved(self, self.index()[0])
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "nprobe"):
            ask(loaded, self.queries[:2], 5, nprobe=0)
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "gallery"):
            ask(loaded, self.queries[:2], 601, nprobe=3)
        signature = loaded.signatures["search_by_text_nprobe"]
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "nprobe"):
            signature(
                text=tf.constant([self.queries[0].tobytes()]),
                k=tf.constant([3]),
                nprobe=tf.constant([2, 2]),
            )
        with self.assertRaisesRegex(ValueError, "nprobe"):
            self.index(nprobe=25)

    def test_signatures_match_the_exact_index(self):
        encoder = VectorEncoder(16)
        exact = SearchIndex(encoder, self.gallery, ids_of(600), "/gallery")
        exact_loaded, _ = saved(self, exact)
        ivf_loaded, path = saved(self, self.index("int8")[0])
        for name in ("search_by_text", "search_by_image", "serving_default"):
            a = exact_loaded.signatures[name]
            b = ivf_loaded.signatures[name]
            self.assertEqual(a.structured_input_signature, b.structured_input_signature)
            self.assertEqual(a.structured_outputs.keys(), b.structured_outputs.keys())
        info = ivf_loaded.gallery_info()
        self.assertEqual(info["method"].numpy(), b"ivf")
        self.assertEqual(info["codes"].numpy(), b"int8")
        self.assertEqual(int(info["nlist"]), 24)
        self.assertEqual(int(info["nprobe"]), 8)
        self.assertEqual(int(info["size"]), 600)
        self.assertEqual(exact_loaded.gallery_info()["method"].numpy(), b"exact")
        # the int8 index holds codes, not float embeddings
        self.assertEqual(ivf_loaded.block_codes.dtype, tf.int8)
        self.assertFalse(hasattr(ivf_loaded, "embeddings"))

    def test_loads_in_a_process_that_imports_only_tensorflow(self):
        _, path = saved(self, self.index("int8")[0])
        query = self.queries[0]
        script = (
            "import sys, numpy as np, tensorflow as tf\n"
            "m = tf.saved_model.load(sys.argv[1])\n"
            "q = np.frombuffer(bytes.fromhex(sys.argv[2]), np.float32)\n"
            "out = m.signatures['search_by_text_nprobe'](text=tf.constant("
            "[q.tobytes()]), k=tf.constant([3]), nprobe=tf.constant([24]))\n"
            "print(' '.join(i.decode() for i in out['ids'].numpy()[0]))\n"
        )
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run(
            [sys.executable, "-c", script, path, query.tobytes().hex()],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=self.get_temp_dir(),
        )
        expected, _ = numpy_top(query[None], self.gallery, 3)
        # int8: the top 3 of this well-separated query are the exact ones
        self.assertEqual(
            out.stdout.split(), [f"img{i:05d}" for i in expected[0]], out.stderr
        )


class IvfLayoutTest(TestCase):
    def test_rows_are_grouped_by_their_nearest_centroid(self):
        gallery = clustered(2, 300)
        layout = build_layout(gallery, ids_of(300), nlist=10)
        self.assertEqual(layout.offsets[-1], 300)
        nearest = np.argmax(layout.codes @ layout.centroids.T, axis=1)
        np.testing.assert_array_equal(nearest, layout.assignments())
        self.assertEqual(sorted(layout.ids.tolist()), ids_of(300).tolist())

    def test_update_adds_replaces_and_removes(self):
        gallery = clustered(3, 200)
        layout = build_layout(gallery, ids_of(200), nlist=8, codes="int8")
        added = clustered(4, 30)
        new_ids = np.array([f"new{i}" for i in range(29)] + ["img00005"])
        updated, retrained = update_layout(
            layout, added, new_ids, remove=["img00001", "img00002"]
        )
        self.assertFalse(retrained)
        np.testing.assert_array_equal(updated.centroids, layout.centroids)
        ids = updated.ids.tolist()
        self.assertEqual(len(ids), 200 - 2 + 29)
        self.assertNotIn("img00001", ids)
        self.assertEqual(ids.count("img00005"), 1)
        row = ids.index("img00005")
        np.testing.assert_allclose(
            updated.vectors()[row], added[-1], atol=layout.quantizer.scale.max()
        )
        # new rows are assigned to the centroid nearest their float vector
        rows = [ids.index(i) for i in new_ids]
        nearest = np.argmax(added @ updated.centroids.T, axis=1)
        np.testing.assert_array_equal(nearest, updated.assignments()[rows])
        # old rows keep their cluster
        old = [i for i in layout.ids.tolist() if i in ids and i not in new_ids]
        before = dict(zip(layout.ids.tolist(), layout.assignments(), strict=True))
        after = dict(zip(ids, updated.assignments(), strict=True))
        self.assertEqual([before[i] for i in old], [after[i] for i in old])
        # every row holds its own image's vector
        source = dict(zip(ids_of(200).tolist(), gallery, strict=True))
        source |= dict(zip(new_ids.tolist(), added, strict=True))
        expected = np.stack([source[i] for i in ids])
        quantizer = layout.quantizer  # (kept: rows are coded as at build)
        np.testing.assert_allclose(
            updated.vectors(), quantizer.decode(quantizer.encode(expected)), atol=1e-6
        )

    def test_kept_float_vectors_follow_an_update(self):
        gallery = clustered(10, 120)
        layout = build_layout(gallery, ids_of(120), 5, "int8", rescore=True)
        added = clustered(11, 12)
        new_ids = [f"new{i}" for i in range(11)] + ["img00004"]
        for retrain in (False, True):
            updated, _ = update_layout(
                layout, added, new_ids, remove=["img00009"], retrain=retrain
            )
            source = dict(zip(ids_of(120).tolist(), gallery, strict=True))
            source |= dict(zip(new_ids, added, strict=True))
            ids = updated.ids.tolist()
            self.assertNotIn("img00009", ids)
            np.testing.assert_array_equal(
                updated.vectors(), np.stack([source[i] for i in ids])
            )

    def test_rescore_needs_int8_codes(self):
        with self.assertRaisesRegex(ValueError, "--rescore needs --codes int8"):
            IndexSettings(method="ivf", rescore=True)

    def test_growth_past_the_factor_retrains(self):
        gallery = clustered(5, 50)
        layout = build_layout(gallery, ids_of(50), nlist=5)
        more = clustered(6, 60)
        updated, retrained = update_layout(layout, more, [f"m{i}" for i in range(60)])
        self.assertTrue(retrained)
        self.assertEqual(updated.trained_size, 110)
        self.assertEqual(updated.size, 110)

    def test_blocks_give_back_the_layout(self):
        gallery = clustered(7, 150)
        layout = build_layout(gallery, ids_of(150), nlist=6, codes="int8")
        blocks = blocked(layout, 8)
        sizes = np.diff(layout.offsets)
        self.assertTrue(np.all(blocks.count == -(-sizes // 8)))
        codes, offsets = unblocked(blocks.codes, blocks.rows, sizes)
        np.testing.assert_array_equal(codes, layout.codes)
        np.testing.assert_array_equal(offsets, layout.offsets)
        self.assertTrue(in_cluster_order(blocks, sizes))
        # blocks stored in another order still give the rows back by position
        order = np.random.default_rng(0).permutation(len(blocks.codes))
        shuffled = Blocks(
            blocks.codes[order], blocks.rows[order], blocks.start, blocks.count
        )
        self.assertFalse(in_cluster_order(shuffled, sizes))
        codes, _ = unblocked(shuffled.codes, shuffled.rows, sizes)
        np.testing.assert_array_equal(codes, layout.codes)

    def test_a_layout_read_as_blocks_updates_as_a_contiguous_one(self):
        gallery = clustered(8, 240)
        layout = build_layout(gallery, ids_of(240), nlist=7, codes="int8")
        as_blocks = IvfLayout(
            layout.centroids, layout.offsets, None, layout.ids,
            quantizer=layout.quantizer, trained_size=layout.trained_size,
            blocks=blocked(layout, 16),
        )  # fmt: skip
        np.testing.assert_array_equal(as_blocks.stored_codes(), layout.codes)
        added, new_ids = clustered(9, 20), [f"new{i}" for i in range(20)]
        remove = ["img00003", "img00100"]
        one, _ = update_layout(layout, added, new_ids, remove=remove)
        other, _ = update_layout(as_blocks, added, new_ids, remove=remove)
        self.assertEqual(one.ids.tolist(), other.ids.tolist())
        np.testing.assert_array_equal(one.offsets, other.offsets)
        np.testing.assert_array_equal(one.stored_codes(), other.stored_codes())
        # the update's blocks are the ones `blocked` lays out from its rows
        rows = one.blocks.codes.shape[1]
        fresh = blocked(dataclasses.replace(one, blocks=None), rows)
        for name in ("codes", "rows", "start", "count"):
            np.testing.assert_array_equal(
                getattr(one.blocks, name), getattr(fresh, name)
            )
