"""Callbacks and run-directory helpers shared by the applications' training."""

import os

import keras


class RunDirectory:
    """The files of one training run under `runs/<name>/`.

    Attributes:
        path: the run folder.
        config: `config.json`, the resolved configuration.
        checkpoints: `checkpoints/` (best and last weights).
        backup: `backup/` (BackupAndRestore state for resuming).
        logs: `logs/` (TensorBoard).
        metrics: `metrics.json`.
        history: `history.csv` (per-epoch logs, appended across resumes).
        complete: `COMPLETE`, written when training finished.
    """

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.config = os.path.join(self.path, "config.json")
        self.checkpoints = os.path.join(self.path, "checkpoints")
        self.best_weights = os.path.join(self.checkpoints, "best.weights.h5")
        self.last_weights = os.path.join(self.checkpoints, "last.weights.h5")
        self.backup = os.path.join(self.path, "backup")
        self.logs = os.path.join(self.path, "logs")
        self.metrics = os.path.join(self.path, "metrics.json")
        self.history = os.path.join(self.path, "history.csv")
        self.complete = os.path.join(self.path, "COMPLETE")

    def create(self):
        for folder in (self.path, self.checkpoints, self.backup, self.logs):
            os.makedirs(folder, exist_ok=True)
        return self

    def file(self, name):
        return os.path.join(self.path, name)

    def trained_weights(self):
        """The best checkpoint if there is one, else the last."""
        for path in (self.best_weights, self.last_weights):
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(
            f"No trained weights in {self.checkpoints}: has `train` run to the end "
            "of an epoch in this run directory?"
        )


def standard_callbacks(run, monitor, mode="max", tensorboard=True):
    """Checkpoints (best by `monitor`, and last), resume, logs, NaN guard.

    Put callbacks that add `monitor` to the logs before these.
    """
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(
            run.best_weights,
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.ModelCheckpoint(run.last_weights, save_weights_only=True),
        keras.callbacks.BackupAndRestore(run.backup),
        keras.callbacks.CSVLogger(run.history, append=True),
    ]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(run.logs, write_graph=False))
    return callbacks
