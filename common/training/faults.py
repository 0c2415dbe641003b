"""Fault injection for the crash tests (tests/faults): off unless asked for.

Setting `MMSUITE_FAULT=POINT:EPOCH` makes training SIGKILL its own process
when it reaches POINT in epoch EPOCH (0-based), as the OOM killer, `kill -9`
or a crash of the process would. A SIGKILL does not test a power cut: what
the process wrote is still in the operating system's page cache and reaches
the disk afterwards. Against power cuts every file is published with
`common.data.files.publish` / `write_atomically` (fsync of the data before
the rename, of the folder after it); no test here can cut the power.

- `mid_epoch`: after the middle training batch of the epoch;
- `checkpoint_save`: while the epoch's checkpoint is being written (after the
  weights file, before the checkpoint is published);
- `validation`: in the middle of the epoch's validation;
- `sigterm`: after the middle training batch of the epoch, a SIGTERM
  instead (what a cluster manager sends before it evicts the process): the
  run is expected to stop after that step with a backup of it.
"""

import os
import signal

ENV = "MMSUITE_FAULT"
POINTS = ("mid_epoch", "checkpoint_save", "validation", "sigterm")


def requested():
    """`(point, epoch)` from the environment, or None."""
    value = os.environ.get(ENV)
    if not value:
        return None
    point, _, epoch = value.partition(":")
    if point not in POINTS or not epoch.isdigit():
        raise ValueError(
            f"{ENV} must be POINT:EPOCH with POINT in {POINTS}; got {value!r}"
        )
    return point, int(epoch)


def maybe_kill(point, epoch, signum=signal.SIGKILL):
    """Sends `signum` to this process if `MMSUITE_FAULT` names this point
    and epoch."""
    if requested() == (point, int(epoch)):
        os.kill(os.getpid(), signum)


def fault_callback():
    """A Keras callback killing at `mid_epoch` / `validation` (or sending a
    SIGTERM at `sigterm`), or None when off."""
    if requested() is None:
        return None
    import keras

    class KillAt(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            steps = (self.params or {}).get("steps") or 2
            if batch == max(0, steps // 2 - 1):
                maybe_kill("mid_epoch", self.epoch)
                maybe_kill("sigterm", self.epoch, signal.SIGTERM)

        def on_test_batch_end(self, batch, logs=None):
            maybe_kill("validation", self.epoch)

    return KillAt()
