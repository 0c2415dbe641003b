import os
import re
import tempfile
import unittest

from common.data.files import (
    file_problem,
    resolve_inside,
    resolve_reference,
    walk_files,
)
from common.testing import TestCase


class FilesTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()

    def touch(self, *parts, data=b"x"):
        path = os.path.join(self.root, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_references_may_be_absolute_or_leave_the_root(self):
        data = os.path.join(self.root, "data")
        self.assertEqual(resolve_reference(data, "a/b.jpg"), f"{data}/a/b.jpg")
        self.assertEqual(resolve_reference(data, "../x.jpg"), f"{self.root}/x.jpg")
        self.assertEqual(resolve_reference(data, "/abs/y.jpg"), "/abs/y.jpg")
        # confinement is for names from outside only
        self.assertIsNone(resolve_inside(data, "../x.jpg"))
        self.assertIsNone(resolve_inside(data, "/abs/y.jpg"))

    def test_file_problems(self):
        good = self.touch("good.bin")
        empty = self.touch("empty.bin", data=b"")
        os.symlink(good, os.path.join(self.root, "link.bin"))
        os.symlink("gone", os.path.join(self.root, "dead.bin"))
        os.symlink("loop2", os.path.join(self.root, "loop1"))
        os.symlink("loop1", os.path.join(self.root, "loop2"))
        problems = {
            name: file_problem(os.path.join(self.root, name), "clip")
            for name in ("good.bin", "link.bin", "empty.bin", "dead.bin", "loop1",
                         "missing.bin", "")
        }  # fmt: skip
        self.assertEqual(
            problems,
            {
                "good.bin": None,
                "link.bin": None,
                "empty.bin": "empty clip file",
                "dead.bin": "broken symbolic link",
                "loop1": "symbolic link loop",
                "missing.bin": "missing clip",
                "": "clip is a folder",
            },
        )
        self.assertEqual(os.path.getsize(empty), 0)

    def test_walk_follows_linked_folders_and_stops_at_loops(self):
        self.touch("top", "a.jpg")
        self.touch("top", "sub", "b.jpg")
        self.touch("top", ".hidden", "c.jpg")
        other = os.path.dirname(self.touch("other", "d.jpg"))
        os.symlink(other, os.path.join(self.root, "top", "linked"))
        os.symlink(
            os.path.join(self.root, "top"), os.path.join(self.root, "top", "sub", "up")
        )
        loops = []
        files = walk_files(os.path.join(self.root, "top"), on_loop=loops.append)
        self.assertEqual(
            [os.path.relpath(f, self.root) for f in files],
            ["top/a.jpg", "top/linked/d.jpg", "top/sub/b.jpg"],
        )
        self.assertEqual(loops, [os.path.join(self.root, "top", "sub", "up")])


class CsvHeaderTest(unittest.TestCase):
    def test_both_apps_name_the_file_of_a_bad_or_empty_header(self):
        from retrieval.data import load_retrieval_data
        from video_understanding.data import load_video_data

        with tempfile.TemporaryDirectory() as root:
            captions = os.path.join(root, "captions.txt")
            manifest = os.path.join(root, "clips.csv")
            for path, bad, expected, load in (
                (
                    captions,
                    "img,text\n",
                    "'image,caption[,split]'",
                    load_retrieval_data,
                ),
                (manifest, "file,label\n", "'path,label[,split]'", load_video_data),
            ):
                with open(path, "w", encoding="utf-8") as f:
                    f.write(bad)
                pattern = f"{re.escape(path)} must start.*{re.escape(expected)}"
                with self.assertRaisesRegex(ValueError, pattern):
                    load(path, verbose=False)
                open(path, "w").close()
                with self.assertRaisesRegex(ValueError, f"{re.escape(path)} is empty"):
                    load(path, verbose=False)
