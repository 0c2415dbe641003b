import os
import threading
import time
from unittest import mock

from common.testing import TestCase
from common.training.distribute import wait_for_file, worker_index


class WaitForFileTest(TestCase):
    def test_gives_up_naming_the_file_and_the_shared_run_directory(self):
        path = os.path.join(self.get_temp_dir(), "other-output", "config.json")
        start = time.monotonic()
        with self.assertRaisesRegex(TimeoutError, "same run directory") as raised:
            wait_for_file(path, timeout=0.6)
        self.assertIn(path, str(raised.exception))
        self.assertLess(time.monotonic() - start, 10)
        with mock.patch.dict(os.environ, {"MMSUITE_WORKER_WAIT": "0.2"}):
            with self.assertRaisesRegex(TimeoutError, "Waited 0 s"):
                wait_for_file(path)

    def test_returns_once_the_file_appears(self):
        path = os.path.join(self.get_temp_dir(), "config.json")
        timer = threading.Timer(0.3, lambda: open(path, "w").close())
        timer.start()
        wait_for_file(path, timeout=30)
        timer.join()
        self.assertTrue(os.path.isfile(path))


class WorkerIndexTest(TestCase):
    def test_chief_first_then_workers(self):
        class Resolver:
            def __init__(self, task_type, task_id, cluster):
                self.task_type, self.task_id, self.cluster = task_type, task_id, cluster

            def cluster_spec(self):
                spec = mock.Mock()
                spec.as_dict.return_value = self.cluster
                return spec

        class Strategy:
            def __init__(self, resolver):
                self.cluster_resolver = resolver

        with_chief = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
        only_workers = {"worker": ["b:1", "c:1"]}
        self.assertEqual(worker_index(Strategy(Resolver("chief", 0, with_chief))), 0)
        self.assertEqual(worker_index(Strategy(Resolver("worker", 1, with_chief))), 2)
        self.assertEqual(worker_index(Strategy(Resolver("worker", 1, only_workers))), 1)
        self.assertEqual(worker_index(None), 0)
