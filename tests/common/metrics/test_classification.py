import os

import numpy as np

from common.metrics import classification_report, plot_confusion_matrix
from common.testing import TestCase


class ClassificationReportTest(TestCase):
    def test_hand_computed_report(self):
        names = ["cat", "dog", "bird"]
        y_true = np.array([0, 0, 0, 1, 1, 2])
        # predictions: cat, cat, dog, dog, cat, bird
        y_prob = np.array(
            [
                [0.8, 0.1, 0.1],
                [0.6, 0.3, 0.1],
                [0.2, 0.7, 0.1],
                [0.1, 0.8, 0.1],
                [0.5, 0.4, 0.1],
                [0.1, 0.2, 0.7],
            ]
        )
        r = classification_report(y_true, y_prob, names, top_k=2)
        self.assertAlmostEqual(r["accuracy"], 4 / 6)
        # top-2: sample 2 (dog, cat) ok; sample 4 (cat, dog) ok -> all 6
        self.assertAlmostEqual(r["top2_accuracy"], 1.0)
        self.assertEqual(r["confusion_matrix"], [[2, 1, 0], [1, 1, 0], [0, 0, 1]])
        p = [2 / 3, 1 / 2, 1.0]
        rc = [2 / 3, 1 / 2, 1.0]
        f1 = [2 * a * b / (a + b) for a, b in zip(p, rc, strict=True)]
        self.assertAlmostEqual(r["macro_precision"], np.mean(p))
        self.assertAlmostEqual(r["macro_recall"], np.mean(rc))
        self.assertAlmostEqual(r["macro_f1"], np.mean(f1))
        self.assertAlmostEqual(r["per_class"]["dog"]["f1"], 0.5)
        self.assertEqual(r["per_class"]["cat"]["support"], 3)

    def test_precision_and_recall_are_not_swapped(self):
        # Per class, precision != recall: swapping them (or the confusion
        # matrix's axes) changes every number below.
        names = ["a", "b", "c"]
        y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
        y_pred = np.array([0, 0, 1, 2, 1, 0, 2, 2, 1])
        r = classification_report(y_true, np.eye(3)[y_pred], names)
        matrix = np.zeros((3, 3), int)
        np.add.at(matrix, (y_true, y_pred), 1)  # rows: true, columns: predicted
        self.assertEqual(r["confusion_matrix"], matrix.tolist())
        precision = np.diag(matrix) / matrix.sum(axis=0)
        recall = np.diag(matrix) / matrix.sum(axis=1)
        self.assertFalse(np.allclose(precision[:2], recall[:2]))
        f1 = 2 * precision * recall / (precision + recall)
        for i, name in enumerate(names):
            self.assertAlmostEqual(r["per_class"][name]["precision"], precision[i])
            self.assertAlmostEqual(r["per_class"][name]["recall"], recall[i])
            self.assertAlmostEqual(r["per_class"][name]["f1"], f1[i])
            self.assertEqual(r["per_class"][name]["support"], matrix[i].sum())
        self.assertAlmostEqual(r["macro_precision"], precision.mean())
        self.assertAlmostEqual(r["macro_recall"], recall.mean())
        self.assertAlmostEqual(r["macro_f1"], f1.mean())

    def test_one_hot_labels_and_unpredicted_class(self):
        y_true = np.eye(3)[[0, 1, 2, 2]]
        y_prob = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]], float)
        r = classification_report(y_true, y_prob, ["a", "b", "c"])
        self.assertEqual(r["per_class"]["b"]["precision"], 0.0)
        self.assertEqual(r["per_class"]["b"]["f1"], 0.0)
        self.assertAlmostEqual(r["top5_accuracy"], 1.0)  # capped at 3 classes

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, r"\[N, 2\].*\(3, 3\)"):
            classification_report([0, 1, 1], np.ones((3, 3)), ["a", "b"])
        with self.assertRaisesRegex(ValueError, r"labels in \[0, 2\).*\[0, 7\]"):
            classification_report([0, 7], np.ones((2, 2)), ["a", "b"])
        with self.assertRaisesRegex(ValueError, "2 samples but `y_prob` has 3"):
            classification_report([0, 1], np.ones((3, 2)), ["a", "b"])

    def test_plot_writes_png(self):
        path = os.path.join(self.get_temp_dir(), "plots", "confusion.png")
        plot_confusion_matrix([[3, 1], [0, 4]], ["left", "right"], path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with self.assertRaisesRegex(ValueError, r"\[2, 2\].*\(3, 3\)"):
            plot_confusion_matrix(np.ones((3, 3)), ["a", "b"], path)
