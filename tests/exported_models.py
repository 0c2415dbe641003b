"""Tiny trained runs of both apps and their exports, made once per test
session (the contract and fault tests share them)."""

import atexit
import os
import shutil
import tempfile

from tests.retrieval.helpers import TINY_OVERRIDES
from tests.video_understanding.test_train import TINY as VIDEO_TINY

_CACHE = {}


class Exported:
    """Paths: `retrieval_run`, `retrieval` (models base), `index`, `images`,
    `video_run`, `video`."""


def exported():
    if "models" in _CACHE:
        return _CACHE["models"]
    from retrieval.__main__ import main as retrieval_main
    from video_understanding.__main__ import main as video_main

    root = tempfile.mkdtemp(prefix="mmsuite-exported-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    e = Exported()
    e.root = root
    models = os.path.join(root, "saved_models")
    e.retrieval_run = os.path.join(root, "runs", "retrieval")
    args = ["train", "--preset", "demo", "--output", e.retrieval_run, "--verbose", "0"]
    for override in TINY_OVERRIDES:
        if override.startswith("training.epochs"):
            override = "training.epochs=1"
        args += ["--set", override]
    assert retrieval_main(args) == 0
    e.retrieval = os.path.join(models, "retrieval")
    assert (
        retrieval_main(["export", "--run", e.retrieval_run, "--output", e.retrieval])
        == 0
    )
    e.images = os.path.join(e.retrieval_run, "data", "Images")
    e.index = os.path.join(models, "retrieval_index")
    assert retrieval_main(
        ["index", "--model", e.retrieval, "--images", e.images, "--output", e.index]
    ) == 0  # fmt: skip
    e.video_run = os.path.join(root, "runs", "video")
    args = ["train", "--output", e.video_run, "--verbose", "0"]
    for override in VIDEO_TINY:
        args += ["--set", override.replace("epochs=2", "epochs=1")]
    assert video_main(args) == 0
    e.video = os.path.join(models, "video_understanding")
    assert video_main(["export", "--run", e.video_run, "--output", e.video]) == 0
    _CACHE["models"] = e
    return e
