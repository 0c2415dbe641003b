"""`index --shard i/N` in parallel, searched together or merged into one
index, answers exactly as one index over the whole gallery."""

import os

import numpy as np
import tensorflow as tf

from common.testing import TestCase
from retrieval.__main__ import main
from retrieval.index import parse_shard
from retrieval.search import search
from tests.exported_models import exported


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
        expected, root = search(e.index, query, k=7)
        together, root2 = search(shards, query, k=7)
        self.assertEqual(root, root2)
        self.assertEqual([i for i, _ in together], [i for i, _ in expected])
        np.testing.assert_allclose(
            [s for _, s in together], [s for _, s in expected], atol=1e-5
        )

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
