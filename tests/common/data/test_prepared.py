"""A prepared folder is read by the application that wrote it, and refused by
name by the other one."""

import json
import os
import tempfile
import unittest

from common.data.prepared import METADATA, is_prepared, read_metadata


def write_metadata(folder, value):
    with open(os.path.join(folder, METADATA), "w", encoding="utf-8") as f:
        f.write(value if isinstance(value, str) else json.dumps(value))


class PreparedMetadataTest(unittest.TestCase):
    def test_own_kind_is_read_and_other_kind_refused(self):
        with tempfile.TemporaryDirectory() as folder:
            self.assertFalse(is_prepared(folder))
            write_metadata(folder, {"kind": "retrieval", "shards": {"train": []}})
            self.assertTrue(is_prepared(folder))
            self.assertEqual(
                read_metadata(folder, "retrieval")["shards"], {"train": []}
            )
            with self.assertRaisesRegex(
                ValueError, "prepared by `retrieval`, not by `video_understanding"
            ):
                read_metadata(folder, "video_understanding")

    def test_both_apps_refuse_each_others_folders(self):
        from retrieval.data import load_retrieval_data
        from video_understanding.records import read_metadata as video_metadata

        with tempfile.TemporaryDirectory() as folder:
            write_metadata(folder, {"kind": "video_understanding", "shards": {}})
            with self.assertRaisesRegex(ValueError, "not by `retrieval prepare`"):
                load_retrieval_data(folder, verbose=False)
            write_metadata(folder, {"kind": "retrieval", "shards": {}})
            with self.assertRaisesRegex(ValueError, "not by `video_understanding"):
                video_metadata(folder)

    def test_broken_metadata_names_the_file(self):
        with tempfile.TemporaryDirectory() as folder:
            write_metadata(folder, "{not json")
            with self.assertRaisesRegex(ValueError, "prepare.json is not valid JSON"):
                read_metadata(folder, "retrieval")
            write_metadata(folder, "[1, 2]")
            with self.assertRaisesRegex(ValueError, "does not hold a JSON object"):
                read_metadata(folder, "retrieval")
