"""Seeds, and TensorFlow's op determinism for bit-identical runs."""


def seed_everything(seed, deterministic=False):
    """Seeds Python, NumPy, TensorFlow and Keras; with `deterministic`, turns
    on `tf.config.experimental.enable_op_determinism()` (ops pick
    deterministic kernels, tf.data runs its maps in order), so two runs with
    the same seed, data and machine give identical weights and metrics."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
