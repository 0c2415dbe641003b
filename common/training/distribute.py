"""`tf.distribute` strategies by the name the `--strategy` flags take."""

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
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(
        f"`strategy` must be one of {', '.join(STRATEGIES)}; received {name!r}."
    )
