"""Training of the retrieval model into a run directory."""

import os
import time

import keras

from common.data.cache import choose_cache
from common.data.files import write_atomically
from common.encoders import LSTMTextEncoder
from common.towers import pretrained_choice
from common.training import (
    file_split,
    finish_training,
    fit_resuming,
    standard_callbacks,
    start_training,
    wait_for_file,
    warmup_cosine,
)
from common.training.faults import maybe_kill
from common.training.optimizers import TowerAdamW
from retrieval.config import RetrievalConfig
from retrieval.data import load_data
from retrieval.demo_data import generate_demo_data
from retrieval.embed import evaluate_embeddings
from retrieval.evaluate import choose_rerank_weight
from retrieval.model import (
    VOCABULARY_FILE,
    build_model,
    load_vocabulary,
)
from retrieval.pipeline import training_dataset
from retrieval.records import PreparedImages

VALIDATION_KEYS = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "rsum")


class RetrievalValidation(keras.callbacks.Callback):
    """Adds validation Recall@K (`val_rsum`, `val_t2i_r1`, ...) to the logs."""

    def __init__(self, image_paths, captions, image_size, batch_size):
        super().__init__()
        self.image_paths = image_paths
        self.captions = captions
        self.image_size = image_size
        self.batch_size = batch_size

    def on_epoch_end(self, epoch, logs=None):
        metrics = evaluate_embeddings(
            self.model,
            self.image_paths,
            self.captions,
            self.image_size,
            self.batch_size,
        )
        maybe_kill("validation", epoch)  # crash tests only (MMSUITE_FAULT)
        if logs is not None:
            for key in VALIDATION_KEYS:
                logs[f"val_{key}"] = metrics[key]
        print(
            " - val: " + " ".join(f"{k} {metrics[k]:.1f}" for k in VALIDATION_KEYS),
            flush=True,
        )


def set_precision(precision):
    keras.config.set_dtype_policy(precision)


def resolve_data(config, run, data_path):
    """The dataset path: `--data`, the config's, or generated demo data."""
    path = data_path or config.data.path
    if path is None:
        if config.preset != "demo":
            raise ValueError(
                f"The {config.preset!r} preset needs --data PATH (a dataset folder or "
                "manifest)."
            )
        d = config.data
        generate_demo_data(
            run.file("data"),
            num_train=d.demo_train_images,
            num_val=d.demo_val_images,
            num_test=d.demo_test_images,
            seed=d.seed,
        )
        path = run.file("data")
    return os.path.abspath(path)


def adapt_vocabulary(config, captions):
    """The vocabulary the model's text encoder learns from `captions` (none
    for a hub text tower, which brings its own tokenizer)."""
    if pretrained_choice(config.model.text_encoder):
        return []
    encoder = LSTMTextEncoder(
        vocabulary_size=config.model.vocabulary_size,
        sequence_length=config.model.sequence_length,
    )
    encoder.adapt(captions, batch_size=256)
    return encoder.get_vocabulary()


def save_vocabulary(run, vocabulary):
    text = "".join(f"{token}\n" for token in vocabulary)
    write_atomically(run.file(VOCABULARY_FILE), text)


def _optimizer(config, steps_per_epoch, epochs, model):
    t = config.training
    schedule = warmup_cosine(t.learning_rate, t.warmup_steps, steps_per_epoch * epochs)
    groups = [(model.matcher.trainable_variables, t.matching_learning_rate_multiplier)]
    for encoder in (model.image_encoder, model.text_encoder):
        if getattr(encoder, "fine_tune", False):
            groups.append(
                (encoder.backbone.trainable_variables, t.hub_learning_rate_multiplier)
            )
    optimizer = TowerAdamW(groups, learning_rate=schedule, weight_decay=t.weight_decay)
    optimizer.exclude_from_weight_decay(
        var_names=["bias", "gamma", "beta", "logit_scale", "region_position"]
    )
    return optimizer


def _epoch_steps(config, num_images):
    t = config.training
    if num_images < t.batch_size:
        raise ValueError(
            f"{num_images} training images is fewer than one batch "
            f"(training.batch_size={t.batch_size})."
        )
    steps = num_images // t.batch_size
    return min(steps, t.steps_per_epoch) if t.steps_per_epoch else steps


def _training_stream(config, images, captions, steps, distribution, verbose):
    """`data_from(first_epoch, last_epoch, skip)` for `fit_resuming`: the
    training batches as the model's input dict, for this worker."""
    t = config.training
    cache, message = choose_cache(
        config.data.cache,
        len(images) * config.data.image_size**2 * 3,
        config.data.cache_budget,
        f"train images ({len(images)})",
    )
    if verbose:
        print(f"Cache: {message}")
    # Each worker of a cluster reads its own prepared shard files when there
    # are enough of them; otherwise (and for image files, listed in one
    # tensor) each worker takes its share of every batch's elements.
    files = len(images.files) if isinstance(images, PreparedImages) else 0
    split = file_split(distribution, files)

    def data_from(first_epoch, last_epoch, skip=0):
        # Epoch `e`'s batches depend only on the seed and `e`: a resumed run
        # starts the stream at the epoch (and the step) it resumes from.
        dataset = training_dataset(
            images,
            captions,
            config.data.image_size,
            t.batch_size,
            augment=config.data.augment,
            cache=cache,
            seed=t.seed,
            first_epoch=first_epoch,
            epochs=last_epoch,
            steps_per_epoch=steps,
            worker=split.worker,
        )
        dataset = dataset.skip(skip).map(
            lambda images, text: {"images": images, "text": text}
        )
        return dataset.with_options(split.options)

    return data_from


def _callbacks(config, run, chief, val_images, val_captions, extra_callbacks):
    t = config.training
    callbacks = []
    if val_images:
        callbacks.append(
            RetrievalValidation(
                val_images,
                val_captions,
                config.data.image_size,
                t.validation_batch_size,
            )
        )
    monitor, mode = ("val_rsum", "max") if val_images else ("loss", "min")
    callbacks += standard_callbacks(run, monitor=monitor, mode=mode, chief=chief)
    return callbacks + list(extra_callbacks)


def _fit_phases(model, config, run, chief, distribution, data_from, steps, fit_args):
    """Fits with the image backbone frozen for `freeze_backbone_epochs` (when
    it starts from pretrained weights), then trainable; a phase finished
    before a restart is not run again. Returns the history of both."""
    t = config.training
    freeze = t.freeze_backbone_epochs if config.model.weights else 0
    phases = [
        (0, min(freeze, t.epochs), False),
        (min(freeze, t.epochs), t.epochs, True),
    ]
    history = {}
    for first, last, backbone_trainable in phases:
        if last <= first:
            continue
        marker = run.file(f"phase_{first}_{last}.done")
        if os.path.isfile(marker):
            model.load_weights(run.last_weights)
            continue
        # A hub tower trains only when fine-tuning was asked for.
        encoder = model.image_encoder
        encoder.backbone.trainable = backbone_trainable and getattr(
            encoder, "fine_tune", True
        )
        with distribution.scope():
            model.compile(optimizer=_optimizer(config, steps, last - first, model))
        fit = fit_resuming(
            model,
            run,
            data_from,
            steps=steps,
            epochs=last,
            initial_epoch=first,
            shuffle=False,
            **fit_args,
        )
        for key, values in fit.items():
            history.setdefault(key, []).extend(values)
        if chief:
            write_atomically(marker, "done\n")
    return history


def train(
    config, output, data_path=None, verbose=1, extra_callbacks=(), strategy="default"
):
    """Trains into `output` (resuming if a backup is there); returns the history.

    The resolved config is saved as `config.json`, the vocabulary (adapted on
    the training captions only) as `vocabulary.txt`. With `strategy="mirrored"`
    the batch is split over the local devices; each replica's contrastive loss
    uses its own share of the batch as negatives.
    """
    # the chief resolves (or generates) the data and says where
    session = start_training(
        config,
        output,
        strategy,
        RetrievalConfig,
        lambda run: resolve_data(config, run, data_path),
    )
    if session.finished is not None:
        return session.finished
    distribution, chief, run = session.distribution, session.chief, session.run

    data = load_data(config)
    train_images, train_captions = data.subset("train")
    val_images, val_captions = data.subset("val")
    steps = _epoch_steps(config, len(train_images))
    # The vocabulary comes first, outside the strategy: adapting under
    # MirroredStrategy would all-reduce strings, and the other workers of a
    # cluster must have it before the model's variables are created (which
    # synchronises the workers).
    if chief and not os.path.isfile(run.file(VOCABULARY_FILE)):
        captions = [c for texts in train_captions for c in texts]
        save_vocabulary(run, adapt_vocabulary(config, captions))
    wait_for_file(run.file(VOCABULARY_FILE))
    # The weights start from the seed, whatever ran before (generating or
    # preparing data, adapting the vocabulary): a run restarted before its
    # first backup starts as the first attempt did.
    t = config.training
    keras.utils.set_random_seed(int(t.seed))
    with distribution.scope():
        model = build_model(config, vocabulary=load_vocabulary(run))
    data_from = _training_stream(
        config, train_images, train_captions, steps, distribution, verbose
    )
    callbacks = _callbacks(
        config, run, chief, val_images, val_captions, extra_callbacks
    )
    start_time = time.perf_counter()
    history = _fit_phases(
        model,
        config,
        run,
        chief,
        distribution,
        data_from,
        steps,
        {"callbacks": callbacks, "verbose": verbose},
    )
    summary = {
        "epochs": t.epochs,
        "train_seconds_this_session": time.perf_counter() - start_time,
        "history": history,
    }
    if chief and t.rerank_weight is None:
        summary["rerank_weight"] = choose_rerank_weight(run.path, bool(verbose))
    return finish_training(session, summary)
