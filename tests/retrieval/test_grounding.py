"""The pointing game, content words and the demo's boxes, against hand-made
maps and boxes and the demo images' own pixels."""

import json
import os

import numpy as np
from PIL import Image

from common.testing import TestCase
from retrieval.demo_data import generate_demo_data
from retrieval.grounding import (
    box_overlaps,
    boxes_for,
    caption_maps,
    content_mask,
    find_boxes,
    pointing_game,
    read_boxes,
    region_boxes,
)


class PointingGameTest(TestCase):
    def test_region_boxes_are_row_major_fractions(self):
        np.testing.assert_allclose(
            region_boxes(2, 3),
            [
                [0, 0, 1 / 3, 0.5],
                [1 / 3, 0, 2 / 3, 0.5],
                [2 / 3, 0, 1, 0.5],
                [0, 0.5, 1 / 3, 1],
                [1 / 3, 0.5, 2 / 3, 1],
                [2 / 3, 0.5, 1, 1],
            ],
        )

    def test_overlap_needs_shared_area(self):
        # On a 4x4 grid, a box touching cell (0, 1)'s edges overlaps it alone.
        overlaps = box_overlaps([[0.25, 0.0, 0.5, 0.25]], 4, 4)[0]
        self.assertEqual(np.flatnonzero(overlaps).tolist(), [1])
        # A box over the top-left corner, 0.3 wide: cells 0, 1, 4, 5.
        overlaps = box_overlaps([[0.0, 0.0, 0.3, 0.3]], 4, 4)[0]
        self.assertEqual(np.flatnonzero(overlaps).tolist(), [0, 1, 4, 5])

    def test_hits_and_chance_by_hand(self):
        boxes = [
            [0.0, 0.0, 0.3, 0.3],  # cells 0, 1, 4, 5
            [0.0, 0.0, 0.3, 0.3],
            [0.6, 0.6, 0.9, 0.9],  # cells 10, 11, 14, 15
            [0.5, 0.0, 1.0, 0.5],  # cells 2, 3, 6, 7
        ]
        attention = np.full((4, 16), 0.01)
        attention[0, 5] = 0.5  # hit
        attention[1, 2] = 0.5  # miss
        attention[2, 15] = 0.5  # hit
        attention[3, 12] = 0.5  # miss
        result = pointing_game(attention, boxes, 4, 4)
        self.assertAlmostEqual(result["pointing_game"], 0.5)
        self.assertAlmostEqual(result["pointing_chance"], 4 / 16)
        self.assertEqual(result["pointing_captions"], 4)

    def test_shape_errors_name_the_sizes(self):
        with self.assertRaisesRegex(ValueError, r"\[N, 16\]"):
            pointing_game(np.zeros((2, 9)), [[0, 0, 1, 1]] * 2, 4, 4)
        with self.assertRaisesRegex(ValueError, "2 attention maps but 1 boxes"):
            pointing_game(np.zeros((2, 16)), [[0, 0, 1, 1]], 4, 4)


class ContentWordsTest(TestCase):
    VOCABULARY = ["", "[UNK]", "a", "red", "circle", "at", "the", "top"]

    def test_stopwords_padding_and_unknown_words_are_left_out(self):
        ids = np.array([[2, 3, 4, 5, 6, 7, 0, 0], [2, 1, 6, 0, 0, 0, 0, 0]])
        mask = content_mask(ids, self.VOCABULARY)
        self.assertEqual(mask[0].tolist(), [0, 1, 1, 0, 0, 1, 0, 0])
        # No content word at all: every word of the caption counts.
        self.assertEqual(mask[1].tolist(), [1, 1, 1, 0, 0, 0, 0, 0])

    def test_caption_map_averages_heads_then_content_words(self):
        attention = np.zeros((1, 2, 3, 4))
        attention[0, 0] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
        attention[0, 1] = [[0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]]
        content = np.array([[True, True, False]])
        # heads: [.5,0,0,.5], [0,1,0,0], ...; words 0 and 1: [.25,.5,0,.25]
        np.testing.assert_allclose(
            caption_maps(attention, content), [[0.25, 0.5, 0.0, 0.25]]
        )


class BoxesFileTest(TestCase):
    def test_checked_and_matched_by_relative_path_or_name(self):
        root = self.get_temp_dir()
        path = os.path.join(root, "boxes.json")
        with open(path, "w") as f:
            json.dump({"a/x.jpg": [0, 0, 0.5, 0.5], "y.jpg": [0.1, 0.2, 0.3, 0.4]}, f)
        self.assertEqual(find_boxes([os.path.join(root, "none"), root]), path)
        boxes = read_boxes(path)
        found = boxes_for(
            [os.path.join(root, "a", "x.jpg"), "/elsewhere/y.jpg", "z.jpg"],
            boxes,
            [root],
        )
        self.assertEqual(found, [[0, 0, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4], None])

    def test_bad_box_names_the_file_and_image(self):
        root = self.get_temp_dir()
        path = os.path.join(root, "boxes.json")
        with open(path, "w") as f:
            json.dump({"x.jpg": [0.5, 0, 0.2, 1]}, f)
        with self.assertRaisesRegex(ValueError, r"boxes\.json: the box of 'x\.jpg'"):
            read_boxes(path)
        with open(path, "w") as f:
            f.write("{not json")
        with self.assertRaisesRegex(ValueError, "not valid JSON"):
            read_boxes(path)


class DemoBoxesTest(TestCase):
    def test_each_box_holds_its_shape(self):
        root = self.get_temp_dir()
        generate_demo_data(root, num_train=6, num_val=2, num_test=4, seed=3)
        boxes = read_boxes(os.path.join(root, "boxes.json"))
        names = sorted(os.listdir(os.path.join(root, "Images")))
        self.assertEqual(sorted(boxes), names)
        for name in names:
            pixels = np.asarray(Image.open(os.path.join(root, "Images", name)))
            # The background is grey; the shape is the saturated pixels.
            saturation = pixels.max(axis=2).astype(int) - pixels.min(axis=2)
            ys, xs = np.nonzero(saturation > 80)
            height, width = saturation.shape
            x0, y0, x1, y1 = boxes[name]
            # JPEG blurs edges by a pixel or two.
            self.assertGreaterEqual(xs.min(), x0 * width - 2, name)
            self.assertLessEqual(xs.max(), x1 * width + 2, name)
            self.assertGreaterEqual(ys.min(), y0 * height - 2, name)
            self.assertLessEqual(ys.max(), y1 * height + 2, name)
            # ... and the box is not much larger than the shape.
            self.assertLess((x1 - x0) * width, xs.max() - xs.min() + 6, name)
