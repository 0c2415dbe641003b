"""`index --shard i/N` in parallel, searched together or merged into one
index, answers exactly as one index over the whole gallery."""

import os
import shutil

import numpy as np
import tensorflow as tf

from common.serving.topk import merge_top_k
from common.testing import TestCase
from retrieval.__main__ import main
from retrieval.gallery import EmbeddingSpool
from retrieval.index import index_versions, parse_shard
from retrieval.prepare import prepare
from retrieval.search import search
from tests.exported_models import exported


def assert_same_answers(test, index, other, query):
    """`other` (indexes or shards) answers `query` by cosine as `index` does:
    the same ids in the same order, the same scores, the same image root."""
    expected, root = search(index, query, k=7, rerank_depth=0)
    found, other_root = search(other, query, k=7, rerank_depth=0)
    test.assertEqual(root, other_root)
    test.assertEqual([i for i, _ in found], [i for i, _ in expected])
    np.testing.assert_allclose(
        [s for _, s in found], [s for _, s in expected], atol=1e-5
    )


class IndexShardsTest(TestCase):
    def test_shards_search_and_merge_like_one_index(self):
        e = exported()
        tmp = self.get_temp_dir()
        shards = []
        for i in range(3):
            out = os.path.join(tmp, f"shard{i}")
            args = ["index", "--model", e.retrieval, "--images", e.images]
            args += ["--output", out, "--shard", f"{i}/3"]
            self.assertEqual(main(args), 0)
            shards.append(out)
        loaded = [tf.saved_model.load(os.path.join(s, "1")) for s in shards]
        sizes = [int(index.gallery_info()["size"]) for index in loaded]
        full = tf.saved_model.load(os.path.join(e.index, "1"))
        self.assertEqual(sum(sizes), int(full.gallery_info()["size"]))
        self.assertLessEqual(max(sizes) - min(sizes), 1)

        query = "a small red circle at the top left"
        # By cosine, shards searched together answer as one index; re-ranked,
        # each shard re-ranks its own top candidates (README: Index).
        assert_same_answers(self, e.index, shards, query)
        expected, _ = search(e.index, query, k=7)

        merged = os.path.join(tmp, "merged")
        args = ["merge-index", "--model", e.retrieval, "--inputs", *shards]
        self.assertEqual(main(args + ["--output", merged]), 0)
        by_merged, _ = search(merged, query, k=7)
        self.assertEqual([i for i, _ in by_merged], [i for i, _ in expected])
        # a shard given twice is refused
        args = ["merge-index", "--model", e.retrieval, "--inputs", shards[0], shards[0]]
        self.assertEqual(main(args + ["--output", os.path.join(tmp, "bad")]), 2)

    def test_parse_shard(self):
        self.assertEqual(parse_shard("2/4"), (2, 4))
        for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
            with self.assertRaises(ValueError):
                parse_shard(bad)


class StreamingIndexTest(TestCase):
    def test_spool_round_trips_rows_and_ids_in_slices(self):
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((23, 5)).astype(np.float32)
        ids = [f"img_{i}.jpg" for i in range(23)]
        spool = EmbeddingSpool(self.get_temp_dir())
        for start in range(0, 23, 6):
            spool.add(vectors[start : start + 6], ids[start : start + 6])
        slices = list(spool.slices(10))
        spool.close()
        self.assertFalse(os.path.exists(spool.folder))
        self.assertEqual([len(i) for _, i, _ in slices], [10, 10, 3])
        np.testing.assert_array_equal(
            np.concatenate([v for v, _, _ in slices]), vectors
        )
        self.assertEqual([i for _, x, _ in slices for i in x.tolist()], ids)

    def test_merge_top_k_equals_numpy_top_k_of_the_union(self):
        rng = np.random.default_rng(1)
        scores = rng.standard_normal(30)
        parts = np.split(np.arange(30), [7, 19])
        answers = []
        for part in parts:
            best = part[np.argsort(-scores[part])][:5]
            answers.append([(f"id{i}", scores[i]) for i in best])
        merged = merge_top_k(answers, 5)
        expected = np.argsort(-scores)[:5]
        self.assertEqual([i for i, _ in merged], [f"id{i}" for i in expected])

    def test_sharded_index_from_prepared_data_answers_like_one_index(self):
        e = exported()
        tmp = self.get_temp_dir()
        prepared = os.path.join(tmp, "prepared")
        data = os.path.join(e.retrieval_run, "data")
        prepare(data, prepared, shard_size=16, verbose=False)
        out = os.path.join(tmp, "sharded")
        args = ["index", "--model", e.retrieval, "--images", prepared]
        args += ["--output", out, "--max-shard-images", "16", "--batch-size", "5"]
        self.assertEqual(main(args), 0)
        full = tf.saved_model.load(os.path.join(e.index, "1"))
        size = int(full.gallery_info()["size"])
        count = -(-size // 16)
        names = sorted(os.listdir(out))
        self.assertEqual(names, [f"shard-{i:05d}-of-{count:05d}" for i in range(count)])
        versions = index_versions(out)
        self.assertEqual([os.path.basename(v) for v in versions], ["1"] * count)
        loaded = [tf.saved_model.load(v) for v in versions]
        sizes = [int(x.gallery_info()["size"]) for x in loaded]
        self.assertEqual(sizes, [16] * (count - 1) + [size - 16 * (count - 1)])
        # the same embeddings, id for id, as the index over the image files
        by_id = dict(
            zip(
                [i.decode() for i in full.ids.numpy()],
                full.embeddings.numpy(),
                strict=True,
            )
        )
        ids = [i.decode() for x in loaded for i in x.ids.numpy()]
        self.assertEqual(sorted(ids), sorted(by_id))
        vectors = np.concatenate([x.embeddings.numpy() for x in loaded])
        np.testing.assert_allclose(
            vectors, np.stack([by_id[i] for i in ids]), atol=1e-5
        )
        query = "a small red circle at the top left"
        assert_same_answers(self, e.index, out, query)
        self.assertFalse([n for n in os.listdir(out) if n.startswith(".")])
        # a version that every shard holds is used; one some shard lacks
        # (an interrupted rerun) is not
        for name in names[:-1]:
            shutil.copytree(os.path.join(out, name, "1"), os.path.join(out, name, "2"))
        self.assertEqual(
            [os.path.basename(v) for v in index_versions(out)], ["1"] * count
        )
        shutil.copytree(
            os.path.join(out, names[-1], "1"), os.path.join(out, names[-1], "2")
        )
        self.assertEqual(
            [os.path.basename(v) for v in index_versions(out)], ["2"] * count
        )
