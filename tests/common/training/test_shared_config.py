"""The data and training settings both applications share are checked the same way,
and the schedule both build cuts its warmup to leave a decay step."""

import math
import unittest

from common.training.config import apply_overrides, parse_value
from common.training.schedules import warmup_cosine
from retrieval.config import get_config as retrieval_config
from video_understanding.config import get_config as video_config

BAD = {
    "training.epochs=0": "training.epochs must be a positive integer",
    "training.batch_size=1.5": "training.batch_size must be a positive integer",
    "training.learning_rate=0": "training.learning_rate must be a number > 0",
    "training.learning_rate=true": "training.learning_rate must be a number > 0",
    "training.warmup_steps=-1": "training.warmup_steps must be an integer >= 0",
    "training.precision=float16": "training.precision must be one of",
    "data.val_fraction=0.6": "data.val_fraction and data.test_fraction must be",
    "data.test_fraction=-0.1": "data.val_fraction and data.test_fraction must be",
    "data.cache=7": "data.cache must be one of",
    "data.cache_budget=2": "data.cache_budget is a fraction",
}


class SharedTrainingConfigTest(unittest.TestCase):
    def test_both_apps_refuse_the_same_bad_settings_alike(self):
        for get_config in (retrieval_config, video_config):
            get_config("demo").validate()
            for override, message in BAD.items():
                with self.subTest(app=get_config.__module__, override=override):
                    config = get_config("demo")
                    # set directly: `apply_overrides` itself refuses some types
                    key, _, raw = override.partition("=")
                    section, field = key.split(".")
                    if key == "data.val_fraction":
                        config.data.test_fraction = 0.4  # 0.6 + 0.4 = 1
                    setattr(getattr(config, section), field, parse_value(raw))
                    with self.assertRaisesRegex(ValueError, message):
                        config.validate()

    def test_app_settings_keep_their_defaults(self):
        self.assertEqual(retrieval_config("flickr8k").training.batch_size, 128)
        self.assertEqual(video_config("ucf101").training.batch_size, 16)
        config = apply_overrides(video_config("demo"), ["training.warmup_steps=7"])
        self.assertEqual(config.training.warmup_steps, 7)


def reference_rate(peak, warmup, decay, step, alpha=0.05):
    if step < warmup:
        return peak * step / max(warmup, 1)
    progress = min(1.0, (step - warmup) / decay)
    return peak * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)))


class WarmupCosineTest(unittest.TestCase):
    def test_warmup_is_cut_to_leave_one_decay_step(self):
        for warmup, total, expected in (
            (50, 20, (19, 1)),
            (5, 20, (5, 15)),
            (3, 1, (0, 1)),
        ):
            schedule = warmup_cosine(1e-3, warmup, total)
            self.assertEqual((schedule.warmup_steps, schedule.decay_steps), expected)
            for step in range(total + 1):
                self.assertAlmostEqual(
                    float(schedule(step)),
                    reference_rate(1e-3, *expected, step),
                    places=9,
                )
