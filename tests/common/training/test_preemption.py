"""A SIGTERM during `fit` stops after the step in progress with a backup of
that step; `fit_resuming` goes on from it to the weights and the history of a
run never stopped. Outside `fit`, a SIGTERM stops at once."""

import json
import os
import signal

import keras
import numpy as np
import tensorflow as tf

from common.testing import TestCase
from common.training import preemption
from common.training.callbacks import RunCheckpointing, fit_resuming
from common.training.run_directory import RunDirectory, backup_position

STEPS, EPOCHS, BATCH = 5, 3, 4


def data_from(first_epoch, last_epoch, skip):
    """Epoch `e`: the same 20 examples in an order drawn from `e` only."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * BATCH, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]], "float32")).astype("float32")
    epochs = []
    for epoch in range(first_epoch, last_epoch):
        order = np.random.default_rng(100 + epoch).permutation(len(x))
        epochs.append(
            tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(BATCH)
        )
    dataset = epochs[0]
    for more in epochs[1:]:
        dataset = dataset.concatenate(more)
    return dataset.skip(skip)


def new_model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", metrics=["mae"])
    return model


class SigtermAt(keras.callbacks.Callback):
    """Sends this process a real SIGTERM after batch `batch` of `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


class PreemptionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.previous = signal.getsignal(signal.SIGTERM)
        watch = preemption.watch()
        watch.requested = watch.deferring = False

    def tearDown(self):
        signal.signal(signal.SIGTERM, self.previous)
        watch = preemption.watch()
        watch.requested = watch.deferring = False
        super().tearDown()

    def fit(self, run_dir, model, extra=()):
        run = RunDirectory(run_dir).create()
        callbacks = [*extra, RunCheckpointing(run, monitor="loss", mode="min")]
        return fit_resuming(
            model,
            run,
            data_from,
            steps=STEPS,
            epochs=EPOCHS,
            callbacks=callbacks,
            verbose=0,
        )

    def test_stops_after_the_step_then_resumes_to_the_same_run(self):
        tmp = self.get_temp_dir()
        reference = new_model()
        expected = self.fit(os.path.join(tmp, "reference"), reference)

        run_dir = os.path.join(tmp, "stopped")
        model = new_model()
        with self.assertRaisesRegex(
            preemption.Preempted, r"after step 3/5 of epoch 2/3; the backup"
        ):
            self.fit(run_dir, model, extra=[SigtermAt(1, 2)])
        # the backup is the state right after that step
        run = RunDirectory(run_dir)
        self.assertEqual(backup_position(run), (1, 3))
        self.assertEqual(int(model.optimizer.iterations.numpy()), STEPS + 3)
        with open(os.path.join(run.backup, "LATEST")) as f:
            state_dir = os.path.join(run.backup, f.read().strip())
        saved = new_model()
        saved.load_weights(os.path.join(state_dir, "model.weights.h5"))
        for a, b in zip(saved.get_weights(), model.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        with open(os.path.join(state_dir, "state.json")) as f:
            state = json.load(f)
        # the epoch's running totals: the loss of 3 batches summed (Mean)
        totals = [float(np.asarray(v)) for v in model.metrics_variables]
        self.assertAllClose(state["metrics"], totals)
        self.assertEqual(len(state["rows"]), 1)

        resumed = new_model()  # a new process: fresh weights, restored
        history = self.fit(run_dir, resumed)
        self.assertEqual(len(history["loss"]), 2)  # epochs 2 and 3
        for key in ("loss", "mae"):
            self.assertAllClose(history[key], expected[key][1:], atol=1e-6)
        for a, b in zip(resumed.get_weights(), reference.get_weights(), strict=True):
            self.assertAllClose(a, b, atol=1e-6)
        self.assertEqual(os.listdir(run.backup), [])

    def test_a_stop_on_the_last_step_of_an_epoch_waits_for_its_backup(self):
        run_dir = os.path.join(self.get_temp_dir(), "run")
        with self.assertRaisesRegex(preemption.Preempted, "at the end of epoch 1/3"):
            self.fit(run_dir, new_model(), extra=[SigtermAt(0, STEPS - 1)])
        self.assertEqual(backup_position(RunDirectory(run_dir)), (1, 0))

    def test_outside_fit_a_sigterm_stops_at_once(self):
        watch = preemption.watch()
        self.assertTrue(watch.install())
        with self.assertRaisesRegex(preemption.Preempted, "nothing to save"):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0)  # a point where the handler runs
        self.assertTrue(watch.requested)

    def test_after_fit_sigterm_is_handled_as_before(self):
        def mine(signum, frame):
            pass

        signal.signal(signal.SIGTERM, mine)
        self.fit(os.path.join(self.get_temp_dir(), "run"), new_model())
        self.assertIs(signal.getsignal(signal.SIGTERM), mine)
