"""`tf.distribute` strategies by the name the `--strategy` flags take."""

import collections

STRATEGIES = ("default", "mirrored", "multi_worker")


def get_strategy(name):
    """`default` (one device), `mirrored` (all local GPUs, or the logical CPU
    devices when there is no GPU) or `multi_worker` (cluster from `TF_CONFIG`)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        _patch_keras_scalar_mean_across_workers()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"`strategy` must be one of {', '.join(STRATEGIES)}; received {name!r}."
    )


def is_chief(strategy=None):
    """Whether this process writes the run's files: always, except under
    `multi_worker` on a worker that is not the chief (the `chief` task, or
    worker 0 when the cluster has no chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    if resolver.task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and ("chief" not in cluster)
    )


def wait_for_file(path, timeout=None, what="the chief"):
    """Blocks until `path` exists (a worker waiting for the chief's files).

    Gives up after `timeout` seconds (default `MMSUITE_WORKER_WAIT`, else 600)
    with a `TimeoutError` saying what it waited for: a worker whose run
    directory is not the chief's (no shared filesystem, another `--output`)
    would otherwise wait for ever.
    """
    import os
    import time

    if timeout is None:
        timeout = float(os.environ.get("MMSUITE_WORKER_WAIT", "600"))
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Waited {timeout:.0f} s for {what} to write {path}. Every worker "
                "must be given the same run directory (--output) on a filesystem "
                "they all share; set MMSUITE_WORKER_WAIT (seconds) to wait longer."
            )
        time.sleep(0.5)


def num_workers(strategy=None):
    """Worker processes in the cluster (1 without `multi_worker`)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")) or 1


def worker_index(strategy=None):
    """This process's place among the cluster's workers, `0 ..
    num_workers - 1` (the chief first; 0 without `multi_worker`)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return 0
    cluster = resolver.cluster_spec().as_dict()
    if resolver.task_type == "chief":
        return 0
    return int(resolver.task_id) + len(cluster.get("chief", []))


def _patch_keras_scalar_mean_across_workers():
    """Keras 3.15 averages each replica's logs across a multi-worker cluster
    with `strategy.reduce("MEAN", v, axis=0)`, which fails on the scalar
    losses and metrics every model logs ("Invalid reduction dimension 0 for
    input with 0 dimensions"). Scalars are averaged with `axis=None` instead;
    everything else goes to Keras as before. Installed only for
    `multi_worker`."""
    from keras.src.backend.tensorflow import trainer

    original = trainer.reduce_per_replica
    if getattr(original, "_scalar_mean_fixed", False):
        return
    import tensorflow as tf

    def reduce_per_replica(values, strategy, reduction):
        multi_worker = trainer._collective_all_reduce_multi_worker(strategy)
        if not multi_worker or reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def reduce_one(value):
            local = strategy.experimental_local_results(value)[0]
            if isinstance(local, tf.Tensor) and local.shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tf.nest.map_structure(reduce_one, values)

    reduce_per_replica._scalar_mean_fixed = True
    trainer.reduce_per_replica = reduce_per_replica


def split_by_file(num_files, workers):
    """Whether each worker of a cluster should read its own shard files
    (files `index, index + workers, ...`): there is more than one worker and
    at least one file each. Otherwise each worker takes its share of every
    batch's elements."""
    return workers > 1 and num_files >= workers


class FileSplit(collections.namedtuple("FileSplit", ["worker", "by_file"])):
    """Which shard files a worker reads (`worker = (index, count)`) and
    whether the workers split by file; `options` are the `tf.data.Options`
    for its dataset (`distribute_options(by_file)`)."""

    __slots__ = ()

    @property
    def options(self):
        return distribute_options(self.by_file)


def file_split(strategy, num_files):
    """A `FileSplit(worker, by_file)` for a dataset read from `num_files`
    shard files under `strategy`: with `by_file` (`split_by_file`),
    `worker = (index, count)` and this process reads files `index, index +
    count, ...`; otherwise `worker = (0, 1)` (every file; the workers split
    each batch by element)."""
    workers = num_workers(strategy)
    by_file = split_by_file(num_files, workers)
    return FileSplit((worker_index(strategy), workers) if by_file else (0, 1), by_file)


def distribute_options(by_file):
    """`tf.data.Options` for a dataset a strategy distributes: auto-sharding
    OFF when the workers already read their own files (`by_file`), else DATA
    (by element; shard files are not split by TensorFlow's FILE policy, whose
    workers could get no file or unequal ones)."""
    import tensorflow as tf

    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = (
        policy.OFF if by_file else policy.DATA
    )
    return options
