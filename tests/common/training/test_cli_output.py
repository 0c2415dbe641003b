"""What the command lines print around their work: no TensorFlow start-up
banners unless asked for, and a Keras progress bar only on a terminal."""

import io
import os
import subprocess
import sys
import unittest

from common.training.cli import fit_verbosity

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

PROBE = """
import argparse, os, sys
from common.training.cli import run_cli
def parser():
    p = argparse.ArgumentParser()
    p.add_argument("word")
    return p
def run(args):
    print(os.environ.get("TF_CPP_MIN_LOG_LEVEL"), "tensorflow" in sys.modules)
    return 0
sys.exit(run_cli(parser, run, sys.argv[1:]))
"""


def run_python(args, env=None):
    env = dict(os.environ if env is None else env, PYTHONPATH=ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT
    )


class QuietStartTest(unittest.TestCase):
    def test_an_error_is_the_only_line_on_stderr(self):
        missing = os.path.join(ROOT, "no-such-index-folder")
        out = run_python(["-m", "retrieval", "search", "--index", missing, "a dog"])
        self.assertEqual(out.returncode, 2, out.stderr)
        lines = out.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, out.stderr)
        self.assertTrue(lines[0].startswith("error: No SavedModel at"), lines)

    def test_help_writes_nothing_on_stderr(self):
        # The configs behind the help (tower choices included) load without
        # TensorFlow, which would print its start-up lines first.
        for app, command in (("retrieval", "train"), ("video_understanding", "ablate")):
            out = run_python(["-m", app, command, "--help"])
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("--set", out.stdout)
            self.assertEqual(out.stderr, "", f"{app} {command} --help")

    def test_tensorflow_loads_quietly_unless_its_logs_are_asked_for(self):
        quiet = run_python(["-c", PROBE, "word"])
        self.assertEqual(quiet.stdout.split(), ["3", "True"], quiet.stderr)
        loud = run_python(["-c", PROBE, "--tf-logs", "word"])
        self.assertEqual(loud.stdout.split(), ["None", "False"], loud.stderr)


class FitVerbosityTest(unittest.TestCase):
    def test_a_bar_on_a_terminal_one_line_per_epoch_elsewhere(self):
        class Terminal(io.StringIO):
            def isatty(self):
                return True

        self.assertEqual(fit_verbosity(None, Terminal()), 1)
        self.assertEqual(fit_verbosity(None, io.StringIO()), 2)
        for chosen in (0, 1, 2):
            self.assertEqual(fit_verbosity(chosen, io.StringIO()), chosen)
