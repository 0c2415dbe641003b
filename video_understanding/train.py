"""Training of the video model in a run directory: the prepared data, the
cache choice, the fit.

Raw clips are decoded once by `prepare` into `runs/NAME/prepared/` (a
`--data` folder that already holds `prepare.json` is used as it is), so
training and evaluation read the same decoded frames and audio.
"""

import os

import keras

from common.data.files import write_atomically
from common.training import (
    distribute_options,
    file_split,
    finish_training,
    fit_resuming,
    standard_callbacks,
    start_training,
    warmup_cosine,
)
from common.training.optimizers import TowerAdamW
from video_understanding.config import VideoConfig
from video_understanding.demo_data import generate_demo_clips, generate_sync_clips
from video_understanding.model import build_model
from video_understanding.pipeline import make_dataset
from video_understanding.prepare import prepare
from video_understanding.records import (
    clip_bytes,
    is_prepared,
    read_metadata,
    split_size,
)


def prepared_folder(config, run, data_path=None, verbose=True):
    """The prepared shards for this run (preparing them when needed)."""
    path = data_path or config.data.path
    if path and is_prepared(path):
        adopt_decoding(config, read_metadata(path), verbose)
        return os.path.abspath(path)
    if path is None:
        if not config.preset.startswith("demo"):
            raise ValueError(f"The {config.preset!r} preset needs --data PATH.")
        generate = (
            generate_sync_clips
            if config.data.demo_task == "sync"
            else generate_demo_clips
        )
        path = os.path.dirname(
            generate(
                run.file("clips"),
                clips_per_class=tuple(config.data.demo_clips_per_class),
                seconds=config.data.clip_seconds,
                seed=config.data.seed,
            )
        )
    output = run.file("prepared")
    prepare(path, output, config.data, verbose=verbose)
    return output


DECODING_KEYS = ("num_frames", "frame_size", "sample_rate", "clip_seconds")


def adopt_decoding(config, metadata, verbose=True):
    """Sets `config.data`'s decoding (frames, size, rate, window) to the one
    the prepared folder was made with, which the model must match."""
    settings = metadata["settings"]
    changed = []
    for key in DECODING_KEYS:
        value = settings.get(key)
        if value is not None and getattr(config.data, key) != value:
            changed.append(f"data.{key}={value} (config: {getattr(config.data, key)})")
            setattr(config.data, key, value)
    if changed and verbose:
        print("Decoding as the prepared data was: " + ", ".join(changed))
    return config


def cache_choices(config, metadata, verbose=True):
    """`(train, val)` cache choices within one memory budget."""
    from common.data.cache import available_memory, choose_cache

    per_clip = clip_bytes(metadata["settings"])
    memory = available_memory()
    choices = []
    for split in ("train", "val"):
        count = metadata.get("counts", {}).get(split)
        if count is None:
            count = split_size(config.data.path, split, metadata)
        choice, message = choose_cache(
            config.data.cache,
            count * per_clip,
            config.data.cache_budget,
            f"{split} clips ({count})",
            memory=memory,
        )
        if choice == "memory":
            memory -= count * per_clip
        if choice not in ("memory", "none"):
            choice = f"{choice}-{split}"
        if verbose and count:
            print(f"Cache: {message}")
        choices.append(choice)
    return choices


def _fine_tuned_towers(model):
    """The pretrained towers `model.fine_tune_hub` trains."""
    return [
        getattr(model, layer)
        for layer in ("frame_encoder", "audio_encoder")
        if getattr(getattr(model, layer, None), "fine_tune", False)
    ]


def _phases(t):
    """`(first epoch, end epoch, pretrained towers trainable)` of each fit:
    `freeze_tower_epochs` with the fine-tuned towers frozen, then the rest."""
    freeze = min(t.freeze_tower_epochs, t.epochs)
    phases = [(0, freeze, False), (freeze, t.epochs, True)]
    return [p for p in phases if p[1] > p[0]]


def compile_model(model, config, steps_per_epoch, multi_label, epochs=None):
    """Compiles for `epochs` (default: the run's) of `steps_per_epoch`."""
    t = config.training
    schedule = warmup_cosine(
        t.learning_rate, t.warmup_steps, steps_per_epoch * (epochs or t.epochs)
    )
    loss = "binary_crossentropy" if multi_label else "sparse_categorical_crossentropy"
    metric = "binary_accuracy" if multi_label else "accuracy"
    towers = [
        (getattr(model, layer).trainable_variables, multiplier)
        for layer, multiplier in (
            ("frame_encoder", t.video_learning_rate_multiplier),
            ("audio_encoder", t.audio_learning_rate_multiplier),
        )
        if hasattr(model, layer) and multiplier != 1.0
    ]
    # A fine-tuned hub tower's own variables step at the hub rate (the
    # later group wins in `TowerAdamW`).
    towers += [
        (tower.backbone.trainable_variables, t.hub_learning_rate_multiplier)
        for tower in _fine_tuned_towers(model)
    ]
    model.compile(
        optimizer=TowerAdamW(
            towers, learning_rate=schedule, weight_decay=t.weight_decay
        ),
        loss=loss,
        metrics=[metric],
    )


def _training_stream(config, metadata, distribution, verbose):
    """`(data_from, validation data or None, steps per epoch)` of a prepared
    folder: `data_from(first_epoch, last_epoch, skip)` for `fit_resuming`
    gives this worker's training batches."""
    prepared = config.data.path
    classes, multi_label = metadata["class_names"], metadata["multi_label"]
    t = config.training
    train_cache, val_cache = cache_choices(config, metadata, verbose=verbose)
    has_val = bool(metadata["shards"]["val"])
    val_data = (
        make_dataset(
            prepared,
            "val",
            t.batch_size,
            len(classes),
            multi_label,
            shuffle=False,
            cache=val_cache,
        )
        if has_val
        else None
    )
    # The epoch size (from the prepared counts), for Keras and the schedule.
    steps = max(1, -(-split_size(prepared, "train", metadata) // t.batch_size))
    # Workers split the shards between them when there are enough, else
    # each batch's elements.
    split = file_split(distribution, len(metadata["shards"]["train"]))

    def train_data(first_epoch, last_epoch, skip):
        # Epoch `e`'s batches depend only on the seed and `e`: a resumed run
        # starts the stream at the epoch (and the step) it resumes from.
        dataset = make_dataset(
            prepared,
            "train",
            t.batch_size,
            len(classes),
            multi_label,
            shuffle=True,
            cache=train_cache,
            seed=t.seed,
            first_epoch=first_epoch,
            epochs=last_epoch,
            worker=split.worker,
        )
        return dataset.skip(skip).with_options(split.options)

    if val_data is not None:
        # Validation batches are split by element: a split in fewer shard
        # files than workers cannot be split by file.
        val_data = val_data.with_options(distribute_options(by_file=False))
    return train_data, val_data, steps


def train(
    config, output, data_path=None, verbose=2, strategy="default", extra_callbacks=()
):
    """Trains into `output` (resuming from its backup); returns the history.

    `strategy` names a `tf.distribute` strategy (`common.training.get_strategy`):
    with `mirrored` each global batch of `training.batch_size` clips is split
    over the local devices and Keras sums the per-replica losses over the
    global batch, so the loss and the learning rate mean what they mean on
    one device.
    """
    # the chief prepares the shards (if needed) and says where
    session = start_training(
        config,
        output,
        strategy,
        VideoConfig,
        lambda run: prepared_folder(config, run, data_path, verbose=bool(verbose)),
    )
    if session.finished is not None:
        return session.finished
    distribution, chief, run = session.distribution, session.chief, session.run
    prepared = config.data.path
    metadata = read_metadata(prepared)
    adopt_decoding(config, metadata, verbose=False)  # the other workers too
    classes, multi_label = metadata["class_names"], metadata["multi_label"]
    if chief:
        write_atomically(run.file("classes.txt"), "".join(f"{c}\n" for c in classes))
    t = config.training
    train_data, val_data, steps = _training_stream(
        config, metadata, distribution, verbose=bool(verbose)
    )
    has_val = val_data is not None
    # The weights start from the seed, whatever ran before (generating or
    # preparing clips): a run restarted before its first backup starts as
    # the first attempt did.
    keras.utils.set_random_seed(int(t.seed))
    with distribution.scope():
        model = build_model(config, len(classes), multi_label)
    metric = "binary_accuracy" if multi_label else "accuracy"
    monitor = f"val_{metric}" if has_val else "loss"
    history = {}
    for first, last, towers_trainable in _phases(t):
        marker = run.file(f"phase_{first}_{last}.done")
        if os.path.isfile(marker):  # finished before a restart
            model.load_weights(run.last_weights)
            continue
        for tower in _fine_tuned_towers(model):
            tower.backbone.trainable = towers_trainable
        with distribution.scope():
            compile_model(model, config, steps, multi_label, last - first)
        fit = fit_resuming(
            model,
            run,
            train_data,
            steps=steps,
            epochs=last,
            initial_epoch=first,
            validation_data=val_data,
            callbacks=standard_callbacks(
                run, monitor=monitor, mode="max" if has_val else "min", chief=chief
            )
            + list(extra_callbacks),
            verbose=verbose,
            shuffle=False,
        )
        for key, values in fit.items():
            history.setdefault(key, []).extend(values)
        if chief:
            write_atomically(marker, "done\n")
    summary = {"epochs": t.epochs, "history": history}
    return finish_training(session, summary)
