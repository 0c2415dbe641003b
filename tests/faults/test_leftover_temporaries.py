"""A run killed while writing a checkpoint or a backup state leaves a
`.tmp-<pid>-...` file or folder; the next fit of that run removes it, and
leaves alone the temporaries of a writer that still runs."""

import os
import subprocess
import sys

import keras
import numpy as np

from common.data.files import remove_dead_temporaries
from common.testing import TestCase
from common.training.callbacks import RunCheckpointing
from common.training.run_directory import RunDirectory


def dead_pid():
    """The PID of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class LeftoverTemporariesTest(TestCase):
    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()

    def test_helper_removes_files_and_folders_of_dead_writers_only(self):
        dead, live = dead_pid(), os.getpid()
        names = {
            f".tmp-{dead}-last.weights.h5": "file",
            f".tmp-{dead}-state-00002": "dir",
            f".tmp-{live}-best.weights.h5": "file",
            "last.weights.h5": "file",
            ".tmp-notapid-x": "file",
        }
        for name, kind in names.items():
            path = os.path.join(self.root, name)
            if kind == "dir":
                os.makedirs(os.path.join(path, "inner"))
            else:
                with open(path, "w") as f:
                    f.write("x")
        removed = remove_dead_temporaries(self.root)
        self.assertEqual(
            sorted(os.path.basename(p) for p in removed),
            sorted([f".tmp-{dead}-last.weights.h5", f".tmp-{dead}-state-00002"]),
        )
        self.assertEqual(
            sorted(os.listdir(self.root)),
            sorted(
                [f".tmp-{live}-best.weights.h5", "last.weights.h5", ".tmp-notapid-x"]
            ),
        )
        self.assertEqual(remove_dead_temporaries(os.path.join(self.root, "none")), [])

    def test_next_fit_removes_a_killed_writers_checkpoint_and_backup(self):
        run = RunDirectory(os.path.join(self.root, "run"))
        run.create()
        os.makedirs(run.checkpoints, exist_ok=True)
        os.makedirs(run.backup, exist_ok=True)
        dead = dead_pid()
        half_checkpoint = os.path.join(run.checkpoints, f".tmp-{dead}-last.weights.h5")
        half_state = os.path.join(run.backup, f".tmp-{dead}-state-00001")
        live = os.path.join(run.checkpoints, f".tmp-{os.getpid()}-other.h5")
        with open(half_checkpoint, "wb") as f:
            f.write(b"\x89HDF half")
        os.makedirs(half_state)
        with open(live, "wb") as f:
            f.write(b"x")

        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        x = np.zeros((4, 3), np.float32)
        y = np.zeros((4, 1), np.float32)
        callback = RunCheckpointing(run, monitor="loss", mode="min")
        model.fit(x, y, epochs=1, batch_size=2, verbose=0, callbacks=[callback])

        self.assertFalse(os.path.exists(half_checkpoint))
        self.assertFalse(os.path.exists(half_state))
        self.assertTrue(os.path.exists(live), "a running writer's file is kept")
        self.assertTrue(
            os.path.isfile(os.path.join(run.checkpoints, "last.weights.h5"))
        )
