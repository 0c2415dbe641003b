"""Train/val/test splits shared by the applications' loaders."""

import numpy as np

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "restval": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}


def assign_splits(splits, seed, val_fraction, test_fraction, min_carved_val=1):
    """Fills `None` splits with a seeded shuffle (test, then val, then train).

    When no item is in `val` afterwards, `val_fraction` of the training items
    (at least `min_carved_val` when there are two or more) become validation.
    """
    splits = list(splits)
    rng = np.random.default_rng(seed)
    missing = [i for i, s in enumerate(splits) if s is None]
    if missing:
        order = rng.permutation(missing)
        n_test = int(round(len(order) * test_fraction))
        n_val = int(round(len(order) * val_fraction))
        for rank, index in enumerate(order):
            splits[index] = (
                "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            )
    if "val" not in splits and val_fraction > 0:
        train = [i for i, s in enumerate(splits) if s == "train"]
        n_val = int(round(len(train) * val_fraction))
        if len(train) > 1:
            n_val = max(min_carved_val, n_val)
        for index in rng.permutation(train)[:n_val]:
            splits[index] = "val"
    return splits
