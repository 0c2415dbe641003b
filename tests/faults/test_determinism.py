"""Fault 7: with `--deterministic` two runs give identical metrics."""

import os

from common.testing import TestCase
from tests.faults.helpers import history, retrieval_command, run_command, video_command


class DeterminismTest(TestCase):
    def check(self, make_command, data_folder):
        tmp = self.get_temp_dir()
        runs = []
        data = None
        for name in ("first", "second"):
            run = os.path.join(tmp, name)
            extra = ["--deterministic"] + (["--data", data] if data else [])
            result = run_command(make_command(run, 2, extra))
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            runs.append(history(run))
            # the second run reads the data the first one generated
            data = os.path.join(run, data_folder)
        self.assertEqual(runs[0], runs[1])
        self.assertEqual(len(runs[0]), 2)

    def test_retrieval(self):
        self.check(retrieval_command, "data")

    def test_video(self):
        self.check(video_command, "clips")
