"""The metadata file of a prepared-data folder (both applications' `prepare`).

Each application's `records` module owns its record format; this module owns
what they share: the `prepare.json` file, its `kind` (the application that
wrote the folder) and the refusal of a folder another application wrote.
"""

import json
import os

METADATA = "prepare.json"


def is_prepared(folder):
    """Whether `folder` holds a `prepare.json` (of any application)."""
    return os.path.isfile(os.path.join(folder, METADATA))


def read_metadata(folder, kind):
    """The `prepare.json` of `folder`; `ValueError` naming the folder and both
    applications when another application than `kind` wrote it."""
    path = os.path.join(folder, METADATA)
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} does not hold a JSON object.")
    found = metadata.get("kind", kind)
    if found != kind:
        raise ValueError(
            f"{folder} holds data prepared by `{found}`, not by `{kind} prepare`."
        )
    return metadata
