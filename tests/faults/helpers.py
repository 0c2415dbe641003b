"""Shared by the fault suite: tiny training commands of both applications."""

import csv
import os
import subprocess
import sys

from tests.retrieval.helpers import TINY_OVERRIDES
from tests.video_understanding.test_train import TINY as VIDEO_TINY


def _train_command(app, overrides, run, epochs, extra):
    """`python -m APP train` on a tiny demo run, `epochs` long."""
    command = [sys.executable, "-m", app, "train", "--preset", "demo"]
    command += ["--output", run, "--verbose", "0"]
    for override in overrides:
        if override.startswith("training.epochs="):
            override = f"training.epochs={epochs}"
        command += ["--set", override]
    return command + list(extra)


def retrieval_command(run, epochs, extra=()):
    return _train_command("retrieval", TINY_OVERRIDES, run, epochs, extra)


def video_command(run, epochs, extra=()):
    return _train_command("video_understanding", VIDEO_TINY, run, epochs, extra)


def environment(fault=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("MMSUITE_FAULT", None)
    if fault:
        env["MMSUITE_FAULT"] = fault
    return env


def run_command(command, fault=None, timeout=600):
    env = environment(fault)
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout
    )


def history(run):
    with open(os.path.join(run, "history.csv"), newline="") as f:
        return list(csv.DictReader(f))
