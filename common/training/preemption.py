"""A graceful stop on SIGTERM, what a cluster manager (Kubernetes, Slurm, a
spot-instance reclaim) sends before it kills a process.

`train` installs one handler for the whole command (`watch().install()`,
right after the strategy exists: MultiWorkerMirroredStrategy installs
TensorFlow's own SIGTERM notifier, which would swallow the signal and let
training go on until the SIGKILL). Outside `fit` a SIGTERM stops the command
at once (there is nothing to save yet, and every file is written atomically).
During `fit` (`RunCheckpointing` sets `deferring`) it only raises a flag: the
training step in progress finishes, the workers of a cluster agree on the
step to stop after (an all-reduce of the flags, so that all of them stop
after the same step), the chief writes a backup of that exact point (weights,
optimizer state, seed states, the epoch's metric totals and its step) and
every process exits with status 143 (128 + SIGTERM). The same command
resumes from that step.

Light on purpose (signal and threading only): the command lines import it
before TensorFlow.
"""

import signal
import threading

EXIT_CODE = 128 + signal.SIGTERM


class Preempted(Exception):
    """Training stopped on SIGTERM; the message says what was saved."""

    exit_code = EXIT_CODE


class SigtermWatch:
    """The process's SIGTERM handler and flag (one per process: `watch()`)."""

    def __init__(self):
        self.requested = False
        self.deferring = False
        self.previous = None
        self._strategy = self._total = None

    def install(self):
        """Installs the handler (from the main thread only; elsewhere it is a
        no-op and returns False). Installing again re-takes the signal from
        a handler put in its place since. Returns True, or False."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self.previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handle)
        return True

    def restore(self, previous):
        """Puts back `previous` (a handler `signal.getsignal` returned; one
        installed outside Python, `None`, is left as it is)."""
        if previous is None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)

    def _handle(self, signum, frame):
        self.requested = True
        if not self.deferring:
            raise Preempted(
                "Stopped by SIGTERM outside the training steps; nothing to save "
                "beyond the last backup. Run the same command to go on."
            )

    def agreed(self, strategy=None):
        """Whether to stop now: this process's flag, or under a multi-worker
        strategy whether any worker's flag is up (every worker must call
        this at the same point of training, as the callbacks do)."""
        from common.training.distribute import num_workers

        if num_workers(strategy) <= 1:
            return self.requested
        import tensorflow as tf

        if self._strategy is not strategy:

            @tf.function
            def total(flag):
                flags = strategy.run(tf.identity, args=(flag,))
                return strategy.reduce("SUM", flags, axis=None)

            self._strategy, self._total = strategy, total
        flag = tf.constant(1 if self.requested else 0, tf.int32)
        self.requested = int(self._total(flag)) > 0
        return self.requested


_WATCH = SigtermWatch()


def watch():
    """The process's `SigtermWatch`."""
    return _WATCH
