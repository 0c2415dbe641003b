"""A training run's folder: its files, its published backup (where a restart
resumes), its per-epoch history, and the model state a backup must carry
beyond the weights."""

import csv
import io
import json
import os

from common.data.files import write_atomically


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


def published_state(run):
    """The newest published backup state folder of `run`, or None."""
    latest = os.path.join(run.backup, "LATEST")
    if not os.path.isfile(latest):
        return None
    with open(latest, encoding="utf-8") as f:
        name = f.read().strip()
    path = os.path.join(run.backup, name)
    if name and os.path.isfile(os.path.join(path, "state.json")):
        return path
    return None


def backup_position(run):
    """Where a restart of `run` (a `RunDirectory`) resumes: `(epochs done,
    steps done of the next epoch)` from its backup (the steps are 0 unless
    the run was stopped by SIGTERM mid-epoch), or None without a backup."""
    state = published_state(run)
    if state is None:
        return None
    with open(os.path.join(state, "state.json"), encoding="utf-8") as f:
        saved = json.load(f)
    return int(saved["epoch"]), int(saved.get("step", 0))


def backup_epoch(run):
    """The epoch a restart of `run` resumes at (the number of epochs its
    backup holds), or None without a backup; read before `fit`, so that the
    data stream can start at that epoch."""
    position = backup_position(run)
    return None if position is None else position[0]


def seed_states(model):
    """The states of the model's random seed generators (dropout, sampling)
    in `model.variables` order: `save_weights` does not keep them, and a
    resumed run must draw the numbers the uninterrupted one would have."""
    return [
        variable
        for variable in model.variables
        if variable.path.endswith("seed_generator_state")
    ]


def write_history(path, rows):
    """Writes `rows` (dicts with an `epoch`) as `history.csv`, atomically."""
    keys = ["epoch"] + sorted({k for row in rows for k in row} - {"epoch"})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_atomically(path, text.getvalue())


def read_history(path):
    """The rows of a `history.csv` (epochs as ints; a torn last line is left
    out), or [] when there is none."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            try:
                epoch = int(row["epoch"])
            except (KeyError, TypeError, ValueError):
                continue  # a torn last line
            rows.append({**row, "epoch": epoch})
        return rows
