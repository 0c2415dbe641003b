"""Fault 1 and 2: training killed with SIGKILL (mid-epoch, while a checkpoint
is written, during validation, and at a random moment from outside), then
stopped by a SIGTERM mid-epoch, and restarted with the same command ends
where a run never killed ends; a write failure while checkpointing."""

import errno
import json
import os
import random
import re
import signal
import subprocess
import time
from unittest import mock

import h5py
import numpy as np

from common.testing import TestCase
from tests.faults.helpers import (
    environment,
    history,
    retrieval_command,
    run_command,
    video_command,
)

KILLS = ("mid_epoch:0", "checkpoint_save:1", "validation:2")
EPOCHS = 5


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


def weights_of(path):
    """Every array of a `.weights.h5` file, by its path in the file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: (
                arrays.__setitem__(name, item[()])
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return arrays


def kill_at_random_moment(test, command, run, after_state, seed):
    """Starts `command`, waits for backup state `after_state` to be published,
    SIGKILLs the process from outside a random 0-1 s later (while it trains
    the next epoch); returns the delay."""
    latest = os.path.join(run, "backup", "LATEST")
    process = subprocess.Popen(
        command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            if os.path.isfile(latest):
                with open(latest) as f:
                    if f.read().strip() == after_state:
                        break
            time.sleep(0.05)
        delay = random.Random(seed).uniform(0.0, 1.0)
        time.sleep(delay)
        test.assertIsNone(process.poll(), "the run ended before it could be killed")
        process.kill()
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    return delay


class KilledTrainingResumesTest(TestCase):
    def check_app(self, make_command):
        tmp = self.get_temp_dir()
        reference = os.path.join(tmp, "reference")
        result = run_command(make_command(reference, EPOCHS, ["--deterministic"]))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

        run = os.path.join(tmp, "killed")
        command = make_command(run, EPOCHS, ["--deterministic"])
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
        # then from outside, at a random moment of epoch 3 (2 done before)
        seed = random.SystemRandom().randrange(2**32)
        delay = kill_at_random_moment(self, command, run, "state-00003", seed)
        note = f"killed {delay:.2f} s after epoch 3's backup (seed {seed})"
        assert_readable(self, run)
        # then a SIGTERM in the middle of epoch 3: the step in progress
        # finishes, a backup of that step is written, the run exits 143
        result = run_command(command, fault="sigterm:3")
        self.assertEqual(result.returncode, 143, result.stderr[-3000:])
        self.assertRegex(
            result.stderr, r"Stopped by SIGTERM after step (\d+)/\d+ of epoch 4/5"
        )
        done = int(re.search(r"after step (\d+)/", result.stderr).group(1))
        self.assertGreater(done, 0)
        assert_readable(self, run)
        self.assertEqual([int(r["epoch"]) for r in history(run)], [0, 1, 2])
        result = run_command(command)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertRegex(
            result.stdout,
            rf"Resuming .*killed at epoch 4/5, step {done + 1}, from "
            rf".*state-00003-step-\d+ \(3 epochs and {done} steps done\)",
        )
        self.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))
        rows = history(run)
        self.assertEqual([int(r["epoch"]) for r in rows], list(range(EPOCHS)))
        # The same run as one never killed: every weight (and the optimizer's
        # state, saved with them) and every logged number.
        expected_rows = history(reference)
        for row, expected_row in zip(rows, expected_rows, strict=True):
            for key in expected_row:
                if key == "epoch":
                    continue
                self.assertAllClose(
                    float(row[key]), float(expected_row[key]), atol=1e-6, msg=note
                )
        final = weights_of(os.path.join(run, "checkpoints", "last.weights.h5"))
        expected = weights_of(os.path.join(reference, "checkpoints", "last.weights.h5"))
        self.assertEqual(sorted(final), sorted(expected))
        worst = max(
            float(np.max(np.abs(final[k].astype("float64") - expected[k])))
            for k in expected
            if expected[k].size
        )
        self.assertLessEqual(worst, 1e-6, f"max |weight difference| {worst}; {note}")
        self.assertEqual(os.listdir(os.path.join(run, "backup")), [])

    def test_retrieval(self):
        self.check_app(retrieval_command)

    def test_video(self):
        # batches of 4: epochs of more than one step, to stop in the middle
        self.check_app(
            lambda run, epochs, extra: video_command(
                run, epochs, ["--set", "training.batch_size=4", *extra]
            )
        )


class CheckpointWriteFailureTest(TestCase):
    def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(self):
        import keras

        from common.training.callbacks import RunCheckpointing
        from common.training.run_directory import RunDirectory

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


class Crash(Exception):
    pass


class RestoredStateTest(TestCase):
    """Without `--deterministic` too: what a restart restores is exactly what
    the backup saved (weights, optimizer variables with its step count, the
    seed generators' states)."""

    def make_model(self):
        import keras

        model = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(4),
                keras.layers.Dropout(0.5),
                keras.layers.Dense(2),
            ]
        )
        model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="mse")
        return model

    def state_of(self, model):
        from common.training.run_directory import seed_states

        return (
            [w.copy() for w in model.get_weights()],
            [np.asarray(v).copy() for v in model.optimizer.variables],
            [np.asarray(v).copy() for v in seed_states(model)],
        )

    def test_restart_restores_the_saved_state_exactly(self):
        import keras

        from common.training.callbacks import RunCheckpointing
        from common.training.run_directory import RunDirectory

        run = RunDirectory(os.path.join(self.get_temp_dir(), "run")).create()
        x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
        y = np.random.default_rng(1).normal(size=(32, 2)).astype("float32")
        saved = {}
        test = self

        class CrashAfterBackup(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:  # the backup of 2 epochs is published
                    saved["state"] = test.state_of(self.model)
                    raise Crash()

        def fit_until_crash(model, callback):
            with self.assertRaises(Crash):
                model.fit(
                    x,
                    y,
                    batch_size=4,
                    epochs=4,
                    verbose=0,
                    callbacks=[
                        RunCheckpointing(run, monitor="loss", mode="min"),
                        callback,
                    ],
                )

        fit_until_crash(self.make_model(), CrashAfterBackup())
        weights, optimizer, seeds = saved["state"]
        self.assertGreater(int(optimizer[0]), 0)  # iterations
        self.assertTrue(seeds)

        class Restored(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                saved["restored"] = test.state_of(self.model)
                raise Crash()

        fresh = self.make_model()
        fit_until_crash(fresh, Restored())
        for before, after in zip(saved["state"], saved["restored"], strict=True):
            self.assertEqual(len(before), len(after))
            for a, b in zip(before, after, strict=True):
                np.testing.assert_array_equal(a, b)
        self.assertEqual(fresh._initial_epoch, 2)
