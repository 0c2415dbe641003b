"""The start and the end that both applications' `train` share."""

import dataclasses
import json
import os

from common.data.cache import limit_malloc_arenas
from common.data.files import write_json_atomically
from common.training import preemption
from common.training.distribute import get_strategy, is_chief, wait_for_file
from common.training.seeding import seed_everything


@dataclasses.dataclass
class TrainingSession:
    """What `start_training` set up.

    Attributes:
        distribution: the `tf.distribute.Strategy`.
        chief: whether this process writes the run's files.
        run: the `RunDirectory`.
        finished: the `COMPLETE` summary if the run had already finished
            (then there is nothing to train), else `None`.
        previous_sigterm: the SIGTERM handler before `start_training`
            installed the suite's, put back by `finish_training`.
    """

    distribution: object
    chief: bool
    run: object
    finished: dict | None = None
    previous_sigterm: object = None


def start_training(config, output, strategy, config_class, resolve_data):
    """Strategy, run directory, seeds and precision, and the data path.

    The strategy is created first (MultiWorkerMirroredStrategy must exist
    before TensorFlow runs anything). The chief calls `resolve_data(run)` for
    the data path (which may generate or prepare data) and saves the config
    with it; the other workers wait for that config and read the path.
    """
    import keras

    from common.training.config import load_config, save_config
    from common.training.run_directory import RunDirectory

    limit_malloc_arenas()
    distribution = get_strategy(strategy)
    # After the strategy: MultiWorkerMirroredStrategy installs TensorFlow's
    # SIGTERM notifier, which would swallow the signal. `finish_training`
    # puts the previous handler back (for `train` called from Python).
    watch = preemption.watch()
    installed = watch.install()
    previous = watch.previous if installed else None
    chief = is_chief(distribution)
    run = RunDirectory(output).create()
    if os.path.isfile(run.complete):
        print(f"{run.path} already finished training; nothing to do.")
        watch.restore(previous)
        with open(run.complete, encoding="utf-8") as f:
            return TrainingSession(distribution, chief, run, json.load(f))
    seed_everything(config.training.seed, config.training.deterministic)
    keras.config.set_dtype_policy(config.training.precision)
    if chief:
        config.data.path = resolve_data(run)
        save_config(config, run.config)
    else:
        wait_for_file(run.config)
        config.data.path = load_config(config_class, run.config).data.path
    return TrainingSession(distribution, chief, run, previous_sigterm=previous)


def finish_training(session, summary):
    """Marks the run complete (the chief writes `COMPLETE`), puts back the
    SIGTERM handler that was there before `start_training`; returns
    `summary`."""
    if session.chief:
        write_json_atomically(session.run.complete, summary)
    preemption.watch().restore(session.previous_sigterm)
    return summary
