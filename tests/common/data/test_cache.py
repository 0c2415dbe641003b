import os
import sys

from common.data.cache import (
    available_memory,
    check_cache_setting,
    choose_cache,
    limit_malloc_arenas,
)
from common.testing import TestCase

GIB = 2**30


class ChooseCacheTest(TestCase):
    def test_auto_caches_only_what_fits_the_budget(self):
        # 25% of 8 GiB = 2 GiB
        choice, message = choose_cache("auto", 2 * GIB, 0.25, "x", memory=8 * GIB)
        self.assertEqual(choice, "memory")
        self.assertIn("2.00 GiB decoded", message)
        choice, message = choose_cache("auto", 2 * GIB + 1, 0.25, "x", memory=8 * GIB)
        self.assertEqual(choice, "none")
        self.assertIn("over the memory budget of 2.00 GiB", message)
        self.assertIn("25% of 8.00 GiB", message)

    def test_explicit_choices_are_kept(self):
        self.assertEqual(choose_cache("none", 1, 0.5, memory=GIB)[0], "none")
        choice, message = choose_cache("memory", 2 * GIB, 0.5, memory=GIB)
        self.assertEqual(choice, "memory")
        self.assertIn("over the 0.50 GiB budget", message)
        self.assertEqual(choose_cache("/tmp/c", 1, 0.5, memory=GIB)[0], "/tmp/c")

    def test_settings_are_checked(self):
        check_cache_setting("auto", 0.25)
        for cache, budget in (("", 0.25), (None, 0.25), ("auto", 0), ("auto", 1.5)):
            with self.assertRaises(ValueError):
                check_cache_setting(cache, budget)
        with self.assertRaisesRegex(ValueError, "cache_budget"):
            check_cache_setting("auto", True)
        self.assertGreater(available_memory(), 0)

    def test_malloc_arenas(self):
        os.environ["MMSUITE_MALLOC_ARENAS"] = "0"
        try:
            self.assertFalse(limit_malloc_arenas())
        finally:
            del os.environ["MMSUITE_MALLOC_ARENAS"]
        if sys.platform.startswith("linux"):
            self.assertTrue(limit_malloc_arenas())
