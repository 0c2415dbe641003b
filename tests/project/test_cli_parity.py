"""The same job has the same flags, with the same help, in both command
lines."""

import unittest

from retrieval.__main__ import build_parser as retrieval_parser
from video_understanding.__main__ import build_parser as video_parser


def options(parser, command):
    """`{flag: (default, help)}` of one sub-command."""
    sub = next(
        action
        for action in parser._actions
        if action.__class__.__name__ == "_SubParsersAction"
    ).choices[command]
    return {
        flag: (action.default, action.help)
        for action in sub._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    }


SHARED = {
    "prepare": ("--output", "--seed", "--val-fraction", "--test-fraction"),
    "evaluate": ("--run", "--split"),
    "train": (
        "--output",
        "--precision",
        "--strategy",
        "--deterministic",
        "--verbose",
    ),
    "export": ("--run", "--version", "--keep"),
}
# Same flag, help naming each application's own items or data.
SAME_FLAG = {
    "prepare": ("--data", "--shard-size", "--workers"),
    "evaluate": ("--data",),
    "train": ("--data", "--preset", "--set"),
    "export": ("--output",),
}


class CliParityTest(unittest.TestCase):
    def test_shared_flags_have_the_same_defaults_and_help(self):
        retrieval, video = retrieval_parser(), video_parser()
        for command, flags in SHARED.items():
            mine, theirs = options(retrieval, command), options(video, command)
            for flag in flags:
                self.assertIn(flag, mine, (command, flag))
                self.assertEqual(mine[flag], theirs.get(flag), (command, flag))
            for flag in SAME_FLAG[command]:
                self.assertIn(flag, mine, (command, flag))
                self.assertIn(flag, theirs, (command, flag))
