import json
import os

from common import demo
from common.testing import TestCase


class CommonDemoTest(TestCase):
    def test_demo_runs_and_writes_results(self):
        output = os.path.join(self.get_temp_dir(), "demo")
        metrics = demo.main(["--output", output, "--epochs", "1"])
        with open(os.path.join(output, "metrics.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f), json.loads(json.dumps(metrics)))
        self.assertEqual(set(metrics["fusion"]), set(demo.FUSIONS))
        self.assertGreater(
            metrics["retrieval"]["after"]["rsum"],
            metrics["retrieval"]["before"]["rsum"],
        )
        self.assertTrue(
            os.path.isfile(os.path.join(output, "confusion_cross_attention.png"))
        )
