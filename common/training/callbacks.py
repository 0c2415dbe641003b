"""Callbacks and run-directory helpers shared by the applications' training."""

import contextlib
import csv
import io
import json
import os
import shutil

import keras
import numpy as np

from common.data.files import publish, write_atomically, write_json_atomically


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


def _published_state(run):
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


def backup_epoch(run):
    """The epoch a restart of `run` (a `RunDirectory`) resumes at (the
    number of epochs its backup holds), or None without a backup; read
    before `fit`, so that the data stream can start at that epoch."""
    state = _published_state(run)
    if state is None:
        return None
    with open(os.path.join(state, "state.json"), encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


def seed_states(model):
    """The states of the model's random seed generators (dropout, sampling)
    in `model.variables` order: `save_weights` does not keep them, and a
    resumed run must draw the numbers the uninterrupted one would have."""
    return [
        variable
        for variable in model.variables
        if variable.path.endswith("seed_generator_state")
    ]


@contextlib.contextmanager
def _writing(path):
    """An `OSError` while writing `path` (disk full, file too large, no
    permission) is raised again as one naming `path` and saying what failed,
    so the command line prints one clear line."""
    try:
        yield
    except OSError as error:
        if getattr(error, "filename", None):
            raise
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise OSError(
            error.errno, f"Could not write the checkpoint ({reason})", path
        ) from error


def _write_csv_atomic(path, rows):
    keys = ["epoch"] + sorted({k for row in rows for k in row} - {"epoch"})
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_atomically(path, text.getvalue())


def _read_csv(path):
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


class RunCheckpointing(keras.callbacks.Callback):
    """Last and best weights, the resume backup and `history.csv`, each
    written so that a crash at any instant leaves a loadable run.

    Every file is written beside its final name and renamed into place
    (`os.replace` is atomic), so a checkpoint is either the old one or the new
    one, never half of each. The backup is one folder per epoch,
    `backup/state-NNNNN/` (weights with the optimizer state, and `state.json`
    with the epoch, the best value and this fit's history rows), published by
    rewriting `backup/LATEST`; older states are removed only after that. On
    restart the newest published state is loaded and training goes on from
    the next epoch; `history.csv` is rebuilt from it, so an epoch is neither
    repeated nor lost in the log. The backup is removed when `fit` ends.

    Args:
        run: a `RunDirectory`.
        monitor: the log key that picks the best checkpoint.
        mode: `"max"` or `"min"`.
        write: False on the workers of a multi-worker cluster that are not
            the chief: they restore from the chief's backup but write nothing.
    """

    def __init__(self, run, monitor, mode="max", write=True):
        super().__init__()
        self.write = write
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min'; received {mode!r}.")
        self.run = run
        self.monitor = monitor
        self.mode = mode
        self.latest = os.path.join(run.backup, "LATEST")
        self.best_file = os.path.join(run.checkpoints, "best.json")
        self.best = None
        self.rows = []  # this fit's history rows, epoch order
        self.synced = False

    # -- restore ----------------------------------------------------------
    def _state_dir(self):
        return _published_state(self.run)

    def on_train_begin(self, logs=None):
        os.makedirs(self.run.backup, exist_ok=True)
        os.makedirs(self.run.checkpoints, exist_ok=True)
        for name in os.listdir(self.run.backup) if self.write else ():
            if name.startswith(".tmp"):  # leftovers of a crash
                shutil.rmtree(os.path.join(self.run.backup, name), ignore_errors=True)
        if os.path.isfile(self.best_file):
            with open(self.best_file, encoding="utf-8") as f:
                saved = json.load(f)
            if saved.get("monitor") == self.monitor:
                self.best = saved.get("value")
        state_dir = self._state_dir()
        self.rows, self.synced = [], False
        if state_dir is None:
            return
        with open(os.path.join(state_dir, "state.json"), encoding="utf-8") as f:
            state = json.load(f)
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(state_dir, "model.weights.h5"))
        seeds = state.get("seed_states")
        variables = seed_states(self.model)
        if seeds is not None and len(seeds) == len(variables):
            for variable, value in zip(variables, seeds, strict=True):
                variable.assign(np.asarray(value, dtype=variable.dtype))
        self.model._initial_epoch = state["epoch"]
        self.best = state.get("best", self.best)
        self.rows = state["rows"]
        epochs = (self.params or {}).get("epochs")
        print(
            f"Resuming {self.run.path} at epoch {state['epoch'] + 1}"
            f"{f'/{epochs}' if epochs else ''} from {state_dir} "
            f"({state['epoch']} epochs done)",
            flush=True,
        )

    def on_epoch_begin(self, epoch, logs=None):
        if self.synced or not self.write:
            return
        # The first epoch of this fit: history.csv keeps the epochs before it
        # (earlier phases, earlier fits), then this fit's backed-up rows.
        before = [r for r in _read_csv(self.run.history) if r["epoch"] < epoch]
        restored = {r["epoch"] for r in self.rows}
        kept = [r for r in before if r["epoch"] not in restored]
        _write_csv_atomic(
            self.run.history, sorted(kept + self.rows, key=lambda r: r["epoch"])
        )
        self.synced = True

    # -- save -------------------------------------------------------------
    def _save_weights(self, path):
        tmp = os.path.join(
            os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}"
        )
        try:
            with _writing(path):
                self.model.save_weights(tmp)
                publish(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def _improved(self, value):
        if value is None or value != value:  # missing or NaN
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        from common.training.faults import maybe_kill

        if not self.write:
            return
        logs = dict(logs or {})
        row = {"epoch": int(epoch)}
        for key, value in logs.items():
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                continue
        value = row.get(self.monitor)
        if self._improved(value):
            self._save_weights(self.run.best_weights)
            self.best = value
            write_json_atomically(
                self.best_file,
                {"monitor": self.monitor, "value": value, "epoch": int(epoch)},
            )
        self._save_weights(self.run.last_weights)

        rows = self.rows + [row]
        name = f"state-{epoch + 1:05d}"
        tmp = os.path.join(self.run.backup, f".tmp-{os.getpid()}-{name}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            with _writing(os.path.join(tmp, "model.weights.h5")):
                self.model.save_weights(os.path.join(tmp, "model.weights.h5"))
            maybe_kill("checkpoint_save", epoch)
            write_json_atomically(
                os.path.join(tmp, "state.json"),
                {
                    "epoch": int(epoch) + 1,
                    "best": self.best,
                    "rows": rows,
                    "seed_states": [
                        np.asarray(v).tolist() for v in seed_states(self.model)
                    ],
                },
            )
            final = os.path.join(self.run.backup, name)
            shutil.rmtree(final, ignore_errors=True)
            publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        previous = self._state_dir()
        write_atomically(self.latest, name + "\n")
        if previous and os.path.basename(previous) != name:
            shutil.rmtree(previous, ignore_errors=True)
        self.rows = rows
        existing = _read_csv(self.run.history)
        _write_csv_atomic(
            self.run.history,
            sorted(
                [r for r in existing if r["epoch"] != row["epoch"]] + [row],
                key=lambda r: r["epoch"],
            ),
        )

    def on_train_end(self, logs=None):
        if not self.write:
            return
        for name in os.listdir(self.run.backup):
            path = os.path.join(self.run.backup, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
        if os.path.isfile(self.latest):
            os.remove(self.latest)


def standard_callbacks(run, monitor, mode="max", tensorboard=True, chief=True):
    """NaN guard, crash-safe checkpoints (best by `monitor`, and last),
    resume and `history.csv` (`RunCheckpointing`), TensorBoard logs.

    Put callbacks that add `monitor` to the logs before these. `chief=False`
    (a multi-worker cluster's other workers) writes no files.
    """
    from common.training.faults import fault_callback

    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        RunCheckpointing(run, monitor=monitor, mode=mode, write=chief),
    ]
    if tensorboard and chief:
        callbacks.append(keras.callbacks.TensorBoard(run.logs, write_graph=False))
    fault = fault_callback()
    if fault is not None:
        callbacks.insert(0, fault)
    return callbacks
