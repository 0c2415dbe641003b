"""`prepare` (both applications) on a full disk (a real `EFBIG` under
`RLIMIT_FSIZE`) stops with one line; SIGKILLed at a random moment after
that, then run again with the same command, it writes the shards an
uninterrupted run writes, byte for byte."""

import json
import os
import random
import signal
import subprocess
import sys
import time

from common.testing import TestCase
from tests.faults.helpers import environment, run_command
from tests.faults.test_disk_full import assert_fails_on_a_full_disk


def shard_bytes(folder):
    """Every shard and listing of a prepared folder, by name."""
    found = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith((".tfrecord", ".jsonl")):
            with open(os.path.join(folder, name), "rb") as f:
                found[name] = f.read()
    return found


class KilledPrepareTest(TestCase):
    def check(self, command_for):
        tmp = self.get_temp_dir()
        reference = os.path.join(tmp, "reference")
        result = run_command(command_for(reference))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        expected = shard_bytes(reference)
        self.assertGreater(sum(n.endswith(".tfrecord") for n in expected), 3)

        killed = os.path.join(tmp, "killed")
        # The disk fills up: no file may grow to the largest shard's size.
        largest = max(len(v) for k, v in expected.items() if k.endswith(".tfrecord"))
        assert_fails_on_a_full_disk(
            self, command_for(killed), largest - 1, "File too large", killed
        )
        self.assertEqual([n for n in os.listdir(killed) if n.startswith(".")], [])
        # then, with space again, the run is killed at a random moment
        seed = random.SystemRandom().randrange(2**32)
        delay = random.Random(seed).uniform(0.0, 0.5)
        # The whole command (its decoding workers too), as a terminal's
        # Ctrl-\\ or an OOM kill of the job would.
        process = subprocess.Popen(
            command_for(killed),
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if os.path.isdir(killed) and any(
                n.endswith(".tfrecord") for n in os.listdir(killed)
            ):
                break
            time.sleep(0.02)
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        note = f"killed {delay:.2f} s after the first shard (seed {seed})"
        result = run_command(command_for(killed))
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        found = shard_bytes(killed)
        self.assertEqual(sorted(found), sorted(expected), note)
        for name, data in expected.items():
            self.assertTrue(found[name] == data, f"{name} differs: {note}")
        self.assertEqual([n for n in os.listdir(killed) if n.startswith(".")], [])
        with open(os.path.join(killed, "prepare.json")) as f:
            metadata = json.load(f)
        with open(os.path.join(reference, "prepare.json")) as f:
            self.assertEqual(metadata["shards"], json.load(f)["shards"])

    def test_retrieval(self):
        from retrieval.demo_data import generate_demo_data

        data = os.path.join(self.get_temp_dir(), "data")
        generate_demo_data(data, num_train=60, num_val=6, num_test=6, seed=2)
        self.check(
            lambda output: (
                [sys.executable, "-m", "retrieval", "prepare"]
                + ["--data", data, "--output", output, "--shard-size", "3"]
            )
        )

    def test_video(self):
        from video_understanding.demo_data import generate_demo_clips

        clips = os.path.join(self.get_temp_dir(), "clips")
        generate_demo_clips(
            clips, clips_per_class=(2, 0, 1), seconds=0.5, fps=8, size=32
        )
        self.check(
            lambda output: (
                [sys.executable, "-m", "video_understanding", "prepare"]
                + ["--data", clips, "--output", output, "--shard-size", "2"]
                + ["--num-frames", "3", "--frame-size", "32", "--sample-rate", "8000"]
                + ["--clip-seconds", "0.5", "--workers", "2"]
            )
        )
