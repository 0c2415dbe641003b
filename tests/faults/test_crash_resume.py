"""Fault 1 and 2: training killed with SIGKILL (mid-epoch, while a checkpoint
is written, during validation) and restarted with the same command; a write
failure while checkpointing."""

import errno
import json
import os
import signal
from unittest import mock

import h5py
import numpy as np

from common.testing import TestCase
from tests.faults.helpers import history, retrieval_command, run_command, video_command

KILLS = ("mid_epoch:0", "checkpoint_save:1", "validation:2")
EPOCHS = 4


def assert_readable(test, run):
    """Every checkpoint file that exists opens; the backup's LATEST resolves."""
    checkpoints = os.path.join(run, "checkpoints")
    for name in ("best.weights.h5", "last.weights.h5"):
        path = os.path.join(checkpoints, name)
        if os.path.exists(path):
            with h5py.File(path, "r") as f:
                test.assertTrue(len(f.keys()) > 0, path)
    latest = os.path.join(run, "backup", "LATEST")
    if os.path.isfile(latest):
        with open(latest) as f:
            state = os.path.join(run, "backup", f.read().strip())
        with open(os.path.join(state, "state.json")) as f:
            json.load(f)
        with h5py.File(os.path.join(state, "model.weights.h5"), "r"):
            pass
    leftovers = [n for n in os.listdir(checkpoints) if n.startswith(".tmp")]
    test.assertEqual(leftovers, [], "half-written checkpoint files left in place")


class KilledTrainingResumesTest(TestCase):
    def check_app(self, make_command, metric):
        tmp = self.get_temp_dir()
        reference = os.path.join(tmp, "reference")
        result = run_command(make_command(reference, EPOCHS))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

        run = os.path.join(tmp, "killed")
        command = make_command(run, EPOCHS)
        for fault in KILLS:
            result = run_command(command, fault=fault)
            self.assertEqual(
                result.returncode, -signal.SIGKILL, (fault, result.stderr[-3000:])
            )
            self.assertFalse(os.path.isfile(os.path.join(run, "COMPLETE")))
            assert_readable(self, run)
            epochs = [int(r["epoch"]) for r in history(run)]
            self.assertEqual(epochs, sorted(set(epochs)), f"after {fault}: {epochs}")
        # killed at: epoch 0 mid-way (nothing done), epoch 1's checkpoint
        # (epoch 0 done), epoch 2's validation (epoch 1 done, redone 0 times)
        self.assertEqual([int(r["epoch"]) for r in history(run)], [0, 1])
        result = run_command(command)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))
        rows = history(run)
        self.assertEqual([int(r["epoch"]) for r in rows], list(range(EPOCHS)))
        final = float(rows[-1][metric])
        expected = float(history(reference)[-1][metric])
        self.assertTrue(np.isfinite(final))
        message = f"{metric}: resumed {final} vs uninterrupted {expected}"
        self.assertLess(abs(final - expected), 0.25 * abs(expected) + 0.1, message)
        self.assertEqual(os.listdir(os.path.join(run, "backup")), [])

    def test_retrieval(self):
        self.check_app(retrieval_command, "loss")

    def test_video(self):
        self.check_app(video_command, "loss")


class CheckpointWriteFailureTest(TestCase):
    def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(self):
        import keras

        from common.training.callbacks import RunCheckpointing, RunDirectory

        run = RunDirectory(os.path.join(self.get_temp_dir(), "run")).create()
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer="adam", loss="mse")
        x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
        callback = RunCheckpointing(run, monitor="loss", mode="min")
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
        good = model.get_weights()
        original = keras.Model.save_weights
        calls = {"n": 0}

        def failing_save(self, path, *args, **kwargs):
            calls["n"] += 1
            original(self, path, *args, **kwargs)
            with open(path, "r+b") as f:  # half a file, then the disk is full
                f.truncate(os.path.getsize(path) // 2)
            raise OSError(errno.ENOSPC, "No space left on device", path)

        model.fit(x, y, epochs=1, verbose=0)  # the weights move on
        with mock.patch.object(keras.Model, "save_weights", failing_save):
            with self.assertRaisesRegex(OSError, "No space left"):
                model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
        self.assertGreater(calls["n"], 0)
        for path in (run.best_weights, run.last_weights):
            fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            fresh.load_weights(path)
            for a, b in zip(fresh.get_weights(), good, strict=True):
                np.testing.assert_array_equal(a, b)
        self.assertEqual(
            [n for n in os.listdir(run.checkpoints) if n.startswith(".tmp")], []
        )
