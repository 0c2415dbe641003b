"""The callbacks of both applications' training: `RunCheckpointing` (best
and last weights, resumable backups, history), `fit_resuming` and
`standard_callbacks`."""

import contextlib
import json
import os
import shutil

import keras
import numpy as np

from common.data.files import (
    publish,
    remove_dead_temporaries,
    write_atomically,
    write_json_atomically,
)
from common.training.distribute import num_workers
from common.training.preemption import Preempted, watch
from common.training.run_directory import (
    backup_position,
    published_state,
    read_history,
    seed_states,
    write_history,
)


def fit_resuming(
    model, run, data_from, *, steps, epochs, initial_epoch=0, callbacks=(), **fit_args
):
    """`model.fit` for epochs `initial_epoch .. epochs - 1` of `steps` steps,
    from where `run`'s backup left off; returns the history (key -> values)
    of the epochs trained here.

    `data_from(first_epoch, last_epoch, skip)` gives the training data of
    epochs `first_epoch .. last_epoch - 1` less the first `skip` batches.
    A backup written mid-epoch (a stop on SIGTERM) holds the steps done: the
    rest of that epoch is trained first (a `fit` of the remaining steps,
    whose metrics go on from the saved totals), then the later epochs.
    """
    checkpointing = [c for c in callbacks if isinstance(c, RunCheckpointing)]
    for callback in checkpointing:
        callback.total_epochs = epochs
    history = {}

    def fit(first, last, skip):
        model._initial_epoch = None  # Keras keeps a restored epoch across fits
        result = model.fit(
            data_from(first, last, skip),
            epochs=last,
            initial_epoch=first,
            steps_per_epoch=steps - skip,
            callbacks=list(callbacks),
            **fit_args,
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)

    start, skip = initial_epoch, 0
    position = backup_position(run)
    if position is not None and initial_epoch <= position[0] < epochs:
        start, skip = position[0], min(position[1], steps - 1)
    if skip:
        for callback in checkpointing:
            callback.keep_backup = start + 1 < epochs
        try:
            fit(start, start + 1, skip)
        finally:
            for callback in checkpointing:
                callback.keep_backup = False
        start += 1
    if start < epochs:
        fit(start, epochs, 0)
    return history


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

    A SIGTERM during `fit` (`common.training.preemption`) stops training
    after the step in progress: the backup then also holds that step and the
    epoch's metric totals (`backup/state-NNNNN-step-SSSSSSS/`) and
    `Preempted` is raised; `fit_resuming` goes on from that step. The
    SIGTERM handler is installed for the fit and the previous one put back
    when it ends.

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
        self.keep_backup = False  # set by `fit_resuming` between two fits
        self.total_epochs = None  # the run's epochs, for the messages
        self._written = None  # the backup state this object last published
        self._resume = None  # (epoch, step, metric totals) of a mid-epoch stop
        self._epoch = 0
        self._offset = 0  # steps of the current epoch done before this fit
        self._totals = None  # metric totals of those steps, to add
        self._installed = False
        self._previous_handler = None

    # -- restore ----------------------------------------------------------
    def _state_dir(self):
        return published_state(self.run)

    def _epochs(self):
        return self.total_epochs or (self.params or {}).get("epochs")

    def on_train_begin(self, logs=None):
        stop = watch()
        self._installed = stop.install()
        self._previous_handler = stop.previous
        stop.deferring = True
        os.makedirs(self.run.backup, exist_ok=True)
        os.makedirs(self.run.checkpoints, exist_ok=True)
        if self.write:  # leftovers of a run killed while writing them
            remove_dead_temporaries(self.run.backup)
            remove_dead_temporaries(self.run.checkpoints)
        if os.path.isfile(self.best_file):
            with open(self.best_file, encoding="utf-8") as f:
                saved = json.load(f)
            if saved.get("monitor") == self.monitor:
                self.best = saved.get("value")
        state_dir = self._state_dir()
        self._resume = None
        if state_dir is not None and state_dir == self._written:
            return  # written by this object in the fit just before: current
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
        epoch, step = int(state["epoch"]), int(state.get("step", 0))
        self.model._initial_epoch = epoch
        self.best = state.get("best", self.best)
        self.rows = state["rows"]
        if step:
            self._resume = (epoch, step, state.get("metrics"))
        epochs = self._epochs()
        print(
            f"Resuming {self.run.path} at epoch {epoch + 1}"
            f"{f'/{epochs}' if epochs else ''}"
            f"{f', step {step + 1},' if step else ''} from {state_dir} "
            f"({epoch} epochs{f' and {step} steps' if step else ''} done)",
            flush=True,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._offset = epoch, 0
        if self._resume is not None and self._resume[0] == epoch:
            _, self._offset, self._totals = self._resume
            self._resume = None
            self._add_totals()
        if self.synced or not self.write:
            return
        # The first epoch of this fit: history.csv keeps the epochs before it
        # (earlier phases, earlier fits), then this fit's backed-up rows.
        before = [r for r in read_history(self.run.history) if r["epoch"] < epoch]
        restored = {r["epoch"] for r in self.rows}
        kept = [r for r in before if r["epoch"] not in restored]
        write_history(
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

    def _publish_state(self, name, state, epoch=None):
        """Writes backup state folder `name` (weights with the optimizer
        state, and `state.json`) and publishes it in `LATEST`; the previous
        state is removed after that."""
        from common.training.faults import maybe_kill

        tmp = os.path.join(self.run.backup, f".tmp-{os.getpid()}-{name}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            with _writing(os.path.join(tmp, "model.weights.h5")):
                self.model.save_weights(os.path.join(tmp, "model.weights.h5"))
            if epoch is not None:
                maybe_kill("checkpoint_save", epoch)
            state = dict(
                state,
                seed_states=[np.asarray(v).tolist() for v in seed_states(self.model)],
            )
            write_json_atomically(os.path.join(tmp, "state.json"), state)
            final = os.path.join(self.run.backup, name)
            shutil.rmtree(final, ignore_errors=True)
            publish(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        previous = self._state_dir()
        write_atomically(self.latest, name + "\n")
        self._written = os.path.join(self.run.backup, name)
        if previous and previous != self._written:
            shutil.rmtree(previous, ignore_errors=True)

    def _stop(self, where):
        watch().requested = False  # acted upon (a later fit starts afresh)
        if self.write:
            what = f"the backup {self._written} holds that point."
        else:
            what = "the chief wrote the backup."
        raise Preempted(
            f"Stopped by SIGTERM {where}; {what} Run the same command to resume."
        )

    def _add_totals(self):
        """The metrics of an epoch resumed mid-way go on from the totals of
        the steps done before the stop: Keras' metric states are running
        sums (of values, counts, confusion counts), so the saved ones are
        added. Metrics Keras builds in the first step are added after it."""
        variables = self.model.metrics_variables
        if self._totals is None or len(self._totals) != len(variables):
            return
        for variable, value in zip(variables, self._totals, strict=True):
            variable.assign(variable + np.asarray(value, dtype=variable.dtype))
        self._totals = None

    def on_train_batch_end(self, batch, logs=None):
        if self._totals is not None:
            self._add_totals()
            self._totals = None
        if not watch().agreed(self.model.distribute_strategy):
            return
        done = self._offset + int(batch) + 1
        steps = self._offset + int((self.params or {}).get("steps") or 0)
        if done >= steps:
            return  # the epoch's last step: stop once its backup is written
        if self.write:
            # The epoch's metric totals, for its logs to go on from them. A
            # cluster's metrics are summed across the workers when read (a
            # collective the others, already stopping, would not join): there
            # the resumed epoch logs the steps after the stop only.
            strategy = self.model.distribute_strategy
            totals = (
                None
                if num_workers(strategy) > 1
                else [np.asarray(v).tolist() for v in self.model.metrics_variables]
            )
            self._publish_state(
                f"state-{self._epoch:05d}-step-{done:07d}",
                {
                    "epoch": self._epoch,
                    "step": done,
                    "best": self.best,
                    "rows": self.rows,
                    "metrics": totals,
                },
            )
        self._stop(
            f"after step {done}/{steps} of epoch {self._epoch + 1}/{self._epochs()}"
        )

    def on_epoch_end(self, epoch, logs=None):
        if self.write:
            self._end_epoch(epoch, logs)
        epochs = self._epochs()
        if watch().agreed(self.model.distribute_strategy):
            if epochs is None or epoch + 1 < epochs or self.keep_backup:
                self._stop(f"at the end of epoch {epoch + 1}/{epochs}")

    def _end_epoch(self, epoch, logs):
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
        self._publish_state(
            f"state-{epoch + 1:05d}",
            {"epoch": int(epoch) + 1, "step": 0, "best": self.best, "rows": rows},
            epoch=epoch,
        )
        self.rows = rows
        existing = read_history(self.run.history)
        write_history(
            self.run.history,
            sorted(
                [r for r in existing if r["epoch"] != row["epoch"]] + [row],
                key=lambda r: r["epoch"],
            ),
        )

    def on_train_end(self, logs=None):
        stop = watch()
        if not self.keep_backup:
            # A SIGTERM during the last epoch's end: the run is finished,
            # nothing is left to stop.
            stop.deferring = stop.requested = False
        if self._installed:
            # What handled SIGTERM before this fit does again (in `train`,
            # the command's own handler; elsewhere Python's default).
            stop.restore(self._previous_handler)
            self._installed = False
        if not self.write or self.keep_backup:
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
