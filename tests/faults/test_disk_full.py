"""A real full disk: training in a process whose file size limit
(`RLIMIT_FSIZE`) is below a checkpoint's size gets a real `EFBIG` from the
kernel while writing its weights; so does an export of the trained run while
it writes its variables. (`prepare`: `tests/faults/test_killed_prepare.py`.)"""

import hashlib
import os
import resource
import signal
import subprocess
import sys

from common.testing import TestCase
from tests.faults.helpers import environment, history, retrieval_command, run_command


def sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def tree_hashes(folder):
    """Every file under `folder`, by relative path: its SHA-1."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = sha1(path)
    return found


def limited_to(size):
    def limit():
        # Without this the kernel's SIGXFSZ would end the process; ignored,
        # the write fails with EFBIG, as it fails with ENOSPC on a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def assert_fails_on_a_full_disk(test, command, size, message, folder):
    """Runs `command` with no file allowed to reach `size` bytes: it must exit
    2 with exactly one `error:` line that says `message` and names a file in
    `folder`, and no traceback."""
    full = subprocess.run(
        command,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limited_to(size),
    )
    test.assertEqual(full.returncode, 2, full.stderr[-3000:])
    lines = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    test.assertEqual(len(lines), 1, full.stderr[-3000:])
    test.assertIn(message, lines[0])
    test.assertIn(folder, lines[0])
    test.assertNotIn("Traceback", full.stderr)


class DiskFullTest(TestCase):
    def test_training_stops_with_one_line_keeps_its_checkpoint_and_resumes(self):
        run = os.path.join(self.get_temp_dir(), "run")
        command = retrieval_command(run, 3)
        killed = run_command(command, fault="checkpoint_save:1")  # epoch 0 saved
        self.assertEqual(killed.returncode, -signal.SIGKILL, killed.stderr[-2000:])
        last = os.path.join(run, "checkpoints", "last.weights.h5")
        good = sha1(last)
        size = os.path.getsize(last)

        assert_fails_on_a_full_disk(
            self,
            command,
            size // 2,
            "Could not write the checkpoint (File too large)",
            os.path.join(run, "checkpoints"),
        )
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

        # An export on a full disk: one line naming the file, no new version,
        # the previous version untouched; with space, the next version.
        base = os.path.join(self.get_temp_dir(), "saved_models", "retrieval")
        export = [sys.executable, "-m", "retrieval", "export", "--run", run]
        export += ["--output", base]
        first = run_command(export)
        self.assertEqual(first.returncode, 0, first.stderr[-3000:])
        before = tree_hashes(os.path.join(base, "1"))
        variables = os.path.join(base, "1", "variables")
        largest = max(
            os.path.getsize(os.path.join(variables, n)) for n in os.listdir(variables)
        )
        assert_fails_on_a_full_disk(
            self,
            export,
            largest // 2,
            "Could not write the export (File too large)",
            base,
        )
        self.assertEqual(sorted(os.listdir(base)), ["1"])  # no version, no .tmp
        self.assertEqual(tree_hashes(os.path.join(base, "1")), before)
        again = run_command(export)
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        self.assertEqual(sorted(os.listdir(base)), ["1", "2"])
