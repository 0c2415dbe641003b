import time

import numpy as np

from common.metrics import retrieval_metrics
from common.testing import TestCase
from tests import numpy_reference as ref


class RetrievalMetricsTest(TestCase):
    def test_hand_built_matrix(self):
        # 3 images, 6 texts (2 per image). Rows = images, columns = texts.
        similarity = np.array(
            [
                # t0   t1   t2   t3   t4   t5
                [0.9, 0.1, 0.8, 0.2, 0.0, 0.3],  # image 0 owns t0, t1
                [0.5, 0.2, 0.1, 0.7, 0.6, 0.1],  # image 1 owns t2, t3
                [0.1, 0.3, 0.2, 0.9, 0.4, 0.2],  # image 2 owns t4, t5
            ]
        )
        text_to_image = np.array([0, 0, 1, 1, 2, 2])
        m = retrieval_metrics(similarity, text_to_image, ks=(1, 2))
        # i2t: image 0 best text t0 at rank 0; image 1's t3 at rank 0;
        # image 2: order t3 .9, t4 .4, t1 .3 -> t4 at rank 1.
        self.assertAlmostEqual(m["i2t_r1"], 100.0 * 2 / 3)
        self.assertEqual(m["i2t_r2"], 100.0)
        # t2i ranks: t0 0, t1 2 (.3 > .2 > .1), t2 2 (.8 .2 .1), t3 1, t4 1, t5 1
        self.assertAlmostEqual(m["t2i_r1"], 100.0 / 6)
        self.assertAlmostEqual(m["t2i_r2"], 100.0 * 4 / 6)
        self.assertEqual(m["t2i_medr"], 2.0)  # floor(median([0,2,2,1,1,1])) + 1
        self.assertEqual(m["i2t_medr"], 1.0)
        self.assertAlmostEqual(m["rsum"], 100 * (2 / 3 + 1 + 1 / 6 + 4 / 6))

    def test_matches_full_argsort_with_ties(self):
        rng = np.random.default_rng(0)
        # Small integers make many ties; the tie-break is a stable sort.
        similarity = rng.integers(0, 4, size=(12, 30)).astype("float32")
        text_to_image = np.concatenate([np.arange(12), rng.integers(0, 12, 18)])
        m = retrieval_metrics(similarity, text_to_image, ks=(1, 5, 10))
        expected = ref.recall_by_sorting(similarity, text_to_image, (1, 5, 10))
        for key, value in expected.items():
            self.assertAlmostEqual(m[key], value, msg=key)

    def test_chunking_does_not_change_results(self):
        from common.metrics.retrieval import image_to_text_ranks, text_to_image_ranks

        rng = np.random.default_rng(1)
        similarity = rng.standard_normal((40, 200)).astype("float32")
        text_to_image = np.repeat(np.arange(40), 5)
        for fn in (image_to_text_ranks, text_to_image_ranks):
            a = fn(similarity, text_to_image, chunk_size=7)
            b = fn(similarity, text_to_image, chunk_size=1000)
            np.testing.assert_array_equal(a, b)

    def test_perfect_and_reversed(self):
        identity = np.eye(5)
        m = retrieval_metrics(identity, np.arange(5))
        self.assertEqual(m["rsum"], 600.0)
        self.assertEqual(m["t2i_medr"], 1.0)
        m = retrieval_metrics(-identity, np.arange(5), ks=(1,))
        self.assertEqual(m["t2i_r1"], 0.0)
        self.assertEqual(m["i2t_medr"], 5.0)

    def test_paper_scale_is_fast(self):
        # 5,000 images x 25,000 texts; budget generous for a shared CI machine.
        rng = np.random.default_rng(2)
        similarity = rng.standard_normal((5000, 25000), dtype=np.float32)
        text_to_image = np.repeat(np.arange(5000), 5)
        similarity[text_to_image, np.arange(25000)] += 4.0
        start = time.perf_counter()
        m = retrieval_metrics(similarity, text_to_image)
        elapsed = time.perf_counter() - start
        self.assertGreater(m["t2i_r10"], 50.0)
        self.assertLess(elapsed, 30.0)

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, r"one image index per text.*\(3,\)"):
            retrieval_metrics(np.zeros((2, 4)), [0, 1, 1])
        with self.assertRaisesRegex(ValueError, r"in \[0, 2\).*max 5"):
            retrieval_metrics(np.zeros((2, 3)), [0, 1, 5])
        with self.assertRaisesRegex(ValueError, r"without a text: \[1\]"):
            retrieval_metrics(np.zeros((2, 3)), [0, 0, 0])
        with self.assertRaisesRegex(ValueError, "NaN"):
            retrieval_metrics(np.full((1, 1), np.nan), [0])
        with self.assertRaisesRegex(ValueError, "integer indices"):
            retrieval_metrics(np.zeros((1, 1)), [0.0])
