"""Training streams whose order is a function of the seed and the epoch.

A run resumed at epoch `e` must see the batches an uninterrupted run would
have seen from epoch `e` on. `Dataset.shuffle(reshuffle_each_iteration=True)`
draws each epoch's order from a sequence that restarts with the process, so
a resumed run would replay epoch 0's order. Here every epoch is its own
dataset seeded by `epoch_seed(seed, epoch)` (shuffles, file order, and the
stateless random choices inside an epoch), and the stream starts at the
epoch the run resumes from. Caches built outside the epoch function are
shared by all epochs.
"""


def epoch_seed(seed, epoch):
    """A Python int seed (31 bits) for epoch `epoch` of a run seeded `seed`."""
    return (int(seed) * 1_000_003 + int(epoch)) % (2**31 - 1)


def epoch_stream(make_epoch, first_epoch, last_epoch):
    """`make_epoch(epoch: int) -> Dataset` for epochs `first_epoch ..
    last_epoch - 1`, one after the other (concatenated as a balanced tree, so
    hundreds of epochs do not nest hundreds deep)."""
    first_epoch, last_epoch = int(first_epoch), int(last_epoch)
    if not 0 <= first_epoch < last_epoch:
        raise ValueError(
            "Need 0 <= first_epoch < last_epoch; received "
            f"{first_epoch} and {last_epoch}."
        )

    def join(start, stop):
        if stop - start == 1:
            return make_epoch(start)
        middle = (start + stop) // 2
        return join(start, middle).concatenate(join(middle, stop))

    return join(first_epoch, last_epoch)


def stateless_seeds(dataset, seed):
    """`(element, int64 [2] seed)` pairs: element `i` of the epoch seeded
    `seed` gets `[seed, i]`, for `tf.random.stateless_*` ops."""
    import tensorflow as tf

    return dataset.enumerate().map(
        lambda index, element: (element, tf.stack([tf.constant(seed, tf.int64), index]))
    )
