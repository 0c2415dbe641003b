"""An export SIGKILLed while it writes leaves no version, and the next
export removes what it left and succeeds."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from common.export.versioned import export_versioned, list_versions
from common.testing import TestCase
from tests.faults.helpers import environment

# A real SavedModel written by a real process, which then keeps writing
# (as a large export would) until it is killed.
EXPORTER = textwrap.dedent(
    """
    import os, sys, time
    import keras
    from common.export.versioned import export_versioned

    base, ready = sys.argv[1], sys.argv[2]
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    def write(path):
        model.export(path, verbose=False)
        extra = os.path.join(path, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with open(ready, "w") as f:
            f.write(path)
        while True:  # still writing when the kill comes
            with open(os.path.join(extra, "big.bin"), "ab") as f:
                f.write(b"x" * 4096)
            time.sleep(0.01)

    export_versioned(write, base)
    """
)


def tiny_savedmodel(path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.export(path, verbose=False)


class KilledExportTest(TestCase):
    def test_kill_mid_export_leaves_no_version_and_next_export_cleans_up(self):
        tmp = self.get_temp_dir()
        base = os.path.join(tmp, "saved_models", "m")
        export_versioned(tiny_savedmodel, base)  # version 1, good
        ready = os.path.join(tmp, "ready")
        log = os.path.join(tmp, "exporter.log")
        with open(log, "w") as errors:
            process = subprocess.Popen(
                [sys.executable, "-c", EXPORTER, base, ready],
                env=environment(),
                cwd=os.getcwd(),
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        deadline = time.monotonic() + 300
        while not os.path.exists(ready) and time.monotonic() < deadline:
            if process.poll() is not None:
                with open(log) as f:
                    self.fail(f"the exporter ended early: {f.read()[-2000:]}")
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        with open(ready) as f:
            left = f.read()
        self.assertTrue(os.path.isdir(left), "the killed export's folder")
        self.assertTrue(os.path.basename(left).startswith(".tmp-2-"))
        self.assertEqual(list_versions(base), [1])  # no version 2 appeared

        # A live exporter's folder is not touched; a dead one's is removed.
        alive = os.path.join(base, f".tmp-9-{os.getpid()}")
        os.makedirs(alive)
        path = export_versioned(tiny_savedmodel, base)
        self.assertEqual(path, os.path.join(base, "2"))
        self.assertFalse(os.path.exists(left))
        self.assertTrue(os.path.isdir(alive))
        self.assertEqual(list_versions(base), [1, 2])
        self.assertTrue(os.path.isfile(os.path.join(path, "saved_model.pb")))
