"""Which shard files a worker of a cluster reads."""

import types
import unittest

from common.training.distribute import distribute_options, file_split


def strategy_of(task_type, task_id, chiefs=0, workers=2):
    """A stand-in with the cluster resolver `tf.distribute` strategies have."""
    cluster = {"worker": [f"w{i}:1" for i in range(workers)]}
    if chiefs:
        cluster["chief"] = ["c:1"]
    spec = types.SimpleNamespace(as_dict=lambda: cluster)
    resolver = types.SimpleNamespace(
        task_type=task_type, task_id=task_id, cluster_spec=lambda: spec
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


class FileSplitTest(unittest.TestCase):
    def test_one_process_reads_every_file(self):
        self.assertEqual(file_split(None, 8), ((0, 1), False))

    def test_workers_read_their_own_files_when_each_has_one(self):
        self.assertEqual(file_split(strategy_of("worker", 1), 4), ((1, 2), True))
        self.assertEqual(file_split(strategy_of("worker", 0), 2), ((0, 2), True))
        # a chief counts as worker 0; worker 0 is then the second
        chief = strategy_of("chief", 0, chiefs=1)
        self.assertEqual(file_split(chief, 3), ((0, 3), True))
        self.assertEqual(
            file_split(strategy_of("worker", 0, chiefs=1), 3), ((1, 3), True)
        )

    def test_fewer_files_than_workers_split_batches_by_element(self):
        self.assertEqual(file_split(strategy_of("worker", 1), 1), ((0, 1), False))
        self.assertEqual(file_split(strategy_of("worker", 1), 0), ((0, 1), False))

    def test_auto_shard_policy_follows_the_split(self):
        import tensorflow as tf

        policy = tf.data.experimental.AutoShardPolicy
        for by_file, expected in ((True, policy.OFF), (False, policy.DATA)):
            options = distribute_options(by_file)
            self.assertEqual(
                options.experimental_distribute.auto_shard_policy, expected
            )

    def test_a_split_carries_the_options_of_its_policy(self):
        policy = __import__("tensorflow").data.experimental.AutoShardPolicy
        by_file = file_split(strategy_of("worker", 1), 4)
        by_element = file_split(strategy_of("worker", 1), 1)
        self.assertEqual(
            by_file.options.experimental_distribute.auto_shard_policy, policy.OFF
        )
        self.assertEqual(
            by_element.options.experimental_distribute.auto_shard_policy,
            policy.DATA,
        )
