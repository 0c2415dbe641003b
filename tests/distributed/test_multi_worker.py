"""Two worker processes on localhost (`--strategy multi_worker`, cluster from
TF_CONFIG) train tiny configs of both apps to the end (retrieval from
`prepare`d shards, split between the workers by file); a worker killed mid-run
and both restarted resume from the last finished epoch; a SIGTERM to one
worker stops both after the same step with a backup, and both restarted go
on from it."""

import json
import os
import re
import signal
import socket
import subprocess
import time

from common.testing import TestCase
from retrieval.demo_data import generate_demo_data
from retrieval.prepare import prepare
from tests.faults.helpers import history, retrieval_command, video_command


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch(command, folder, faults=(None, None)):
    """Starts worker 0 (the chief) and worker 1; returns the processes."""
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        env.pop("MMSUITE_FAULT", None)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        if faults[index]:
            env["MMSUITE_FAULT"] = faults[index]
        log = open(os.path.join(folder, f"worker{index}-{time.time():.0f}.log"), "w")
        processes.append(
            subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    return processes


def wait(processes, timeout=600):
    deadline = time.time() + timeout
    for p in processes:
        p.wait(timeout=max(1, deadline - time.time()))
    return [p.returncode for p in processes]


def logs(folder):
    text = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".log"):
            with open(os.path.join(folder, name)) as f:
                text.append(f"--- {name}\n" + f.read()[-2500:])
    return "\n".join(text)


class MultiWorkerTest(TestCase):
    def test_retrieval_worker_killed_then_both_restarted(self):
        # from prepared shards (6 train files): each worker reads its own files
        tmp = self.get_temp_dir()
        generate_demo_data(os.path.join(tmp, "data"), 24, 8, 10, seed=0)
        prepared = os.path.join(tmp, "prepared")
        prepare(os.path.join(tmp, "data"), prepared, shard_size=4, verbose=False)
        run = os.path.join(tmp, "run")
        extra = ["--strategy", "multi_worker", "--data", prepared]
        command = retrieval_command(run, 3, extra)
        processes = launch(command, tmp, faults=(None, "mid_epoch:1"))
        try:
            self.assertEqual(processes[1].wait(timeout=600), -signal.SIGKILL, logs(tmp))
            # the chief is left waiting on its peer: stop it as a cluster
            # manager would, then start both again with the same command
            time.sleep(1)
            processes[0].kill()
            processes[0].wait()
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
        self.assertEqual([int(r["epoch"]) for r in history(run)], [0], logs(tmp))
        self.assertFalse(os.path.isfile(os.path.join(run, "COMPLETE")))
        codes = wait(launch(command, tmp))
        self.assertEqual(codes, [0, 0], logs(tmp))
        self.assertEqual([int(r["epoch"]) for r in history(run)], [0, 1, 2])
        self.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))

    def test_video_two_workers_train_to_the_end(self):
        tmp = self.get_temp_dir()
        run = os.path.join(tmp, "run")
        command = video_command(run, 2, ["--strategy", "multi_worker"])
        codes = wait(launch(command, tmp))
        self.assertEqual(codes, [0, 0], logs(tmp))
        self.assertEqual([int(r["epoch"]) for r in history(run)], [0, 1])
        self.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))
        # only the chief wrote the run's files
        self.assertTrue(
            os.path.isfile(os.path.join(run, "checkpoints", "last.weights.h5"))
        )

    def test_video_sigterm_to_one_worker_stops_both_then_both_resume(self):
        tmp = self.get_temp_dir()
        run = os.path.join(tmp, "run")
        # batches of 4: 4 steps an epoch
        extra = ["--strategy", "multi_worker", "--set", "training.batch_size=4"]
        command = video_command(run, 3, extra)
        processes = launch(command, tmp)
        history_file = os.path.join(run, "history.csv")
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not (
                os.path.isfile(history_file) and history(run)
            ):
                self.assertEqual([p.poll() for p in processes], [None, None])
                time.sleep(0.1)
            # what Kubernetes sends a pod it evicts, to one worker only
            processes[1].send_signal(signal.SIGTERM)
            # both stop within the grace period, not when killed
            codes = wait(processes, timeout=120)
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
        self.assertEqual(codes, [143, 143], logs(tmp))
        text = logs(tmp)
        stops = re.findall(
            r"Stopped by SIGTERM (after step \d+/4 of epoch \d/3|at the end of "
            r"epoch \d/3)",
            text,
        )
        self.assertEqual(len(stops), 2, text)
        self.assertEqual(stops[0], stops[1], "the workers stopped at different steps")
        with open(os.path.join(run, "backup", "LATEST")) as f:
            self.assertTrue(f.read().startswith("state-"))
        self.assertFalse(os.path.isfile(os.path.join(run, "COMPLETE")))

        codes = wait(launch(command, tmp))
        self.assertEqual(codes, [0, 0], logs(tmp))
        self.assertIn(f"Resuming {run} at epoch", logs(tmp))
        self.assertEqual([int(r["epoch"]) for r in history(run)], [0, 1, 2])
        self.assertTrue(os.path.isfile(os.path.join(run, "COMPLETE")))
