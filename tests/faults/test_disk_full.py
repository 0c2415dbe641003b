"""A real full disk: training in a process whose file size limit
(`RLIMIT_FSIZE`) is below a checkpoint's size gets a real `EFBIG` from the
kernel while writing its weights."""

import hashlib
import os
import resource
import signal
import subprocess

from common.testing import TestCase
from tests.faults.helpers import environment, history, retrieval_command, run_command


def sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def limited_to(size):
    def limit():
        # Without this the kernel's SIGXFSZ would end the process; ignored,
        # the write fails with EFBIG, as it fails with ENOSPC on a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


class DiskFullTest(TestCase):
    def test_training_stops_with_one_line_keeps_its_checkpoint_and_resumes(self):
        run = os.path.join(self.get_temp_dir(), "run")
        command = retrieval_command(run, 3)
        killed = run_command(command, fault="checkpoint_save:1")  # epoch 0 saved
        self.assertEqual(killed.returncode, -signal.SIGKILL, killed.stderr[-2000:])
        last = os.path.join(run, "checkpoints", "last.weights.h5")
        good = sha1(last)
        size = os.path.getsize(last)

        full = subprocess.run(
            command,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=limited_to(size // 2),
        )
        self.assertEqual(full.returncode, 2, full.stderr[-3000:])
        lines = [line for line in full.stderr.splitlines() if line.startswith("error:")]
        self.assertEqual(len(lines), 1, full.stderr[-3000:])
        self.assertIn("Could not write the checkpoint (File too large)", lines[0])
        self.assertIn(os.path.join(run, "checkpoints"), lines[0])
        self.assertNotIn("Traceback", full.stderr)
        # The previous checkpoint and backup are untouched, nothing half
        # written is left beside them.
        self.assertEqual(sha1(last), good)
        self.assertEqual(
            [n for n in os.listdir(os.path.dirname(last)) if n.startswith(".tmp")], []
        )
        with open(os.path.join(run, "backup", "LATEST")) as f:
            self.assertEqual(f.read().strip(), "state-00001")
        self.assertEqual(
            [n for n in os.listdir(os.path.join(run, "backup")) if n.startswith(".")],
            [],
        )
        # With space again, the same command finishes the run.
        result = run_command(command)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertEqual([int(r["epoch"]) for r in history(run)], [0, 1, 2])
        self.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))
