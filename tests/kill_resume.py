"""Kill a training command with SIGKILL after its first epoch, then rerun it."""

import csv
import os
import pathlib
import signal
import subprocess
import time


def kill_after_first_epoch_then_resume(test, command, run, timeout=600):
    """Runs `command` (training into `run`), SIGKILLs it once `history.csv` has
    its first epoch row, reruns it to the end and returns the epoch numbers
    in `history.csv`, in the order they were written."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    history = os.path.join(run, "history.csv")
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if (
            os.path.isfile(history)
            and len(pathlib.Path(history).read_text().splitlines()) >= 2
        ):
            break  # epoch 0 finished (the backup is written before the CSV row)
        time.sleep(0.02)
    test.assertIsNone(process.poll(), "training ended before it could be killed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    test.assertFalse(os.path.isfile(os.path.join(run, "COMPLETE")))
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout
    )
    test.assertEqual(result.returncode, 0, result.stderr[-3000:])
    test.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))
    with open(history) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]
