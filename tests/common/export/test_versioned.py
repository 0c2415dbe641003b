import os

import keras
import numpy as np
import tensorflow as tf

from common.export import (
    export_versioned,
    list_versions,
    next_version,
    resolve_version_dir,
)
from common.testing import TestCase


def write_small_savedmodel(path):
    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda x: model(x),
        input_signature=[tf.TensorSpec((None, 3), name="x")],
    )
    archive.write_out(path, verbose=False)


class VersionedExportTest(TestCase):
    def test_versions_increase_and_are_loadable(self):
        base = os.path.join(self.get_temp_dir(), "saved_models", "toy")
        self.assertEqual(next_version(base), 1)
        first = export_versioned(write_small_savedmodel, base)
        second = export_versioned(write_small_savedmodel, base)
        self.assertEqual(
            [os.path.basename(first), os.path.basename(second)], ["1", "2"]
        )
        self.assertEqual(list_versions(base), [1, 2])
        self.assertEqual(resolve_version_dir(base), second)
        self.assertEqual(resolve_version_dir(first), first)
        loaded = tf.saved_model.load(second)
        out = loaded.signatures["serve"](x=tf.constant(np.ones((2, 3), "float32")))
        self.assertEqual(tuple(next(iter(out.values())).shape), (2, 2))
        self.assertEqual(sorted(os.listdir(base)), ["1", "2"])

    def test_never_overwrites(self):
        base = os.path.join(self.get_temp_dir(), "m")
        export_versioned(write_small_savedmodel, base, version=3)
        with self.assertRaisesRegex(FileExistsError, "Version 3 already exists"):
            export_versioned(write_small_savedmodel, base, version=3)
        self.assertEqual(next_version(base), 4)

    def test_crash_mid_export_leaves_no_version(self):
        base = os.path.join(self.get_temp_dir(), "m")
        export_versioned(write_small_savedmodel, base)

        def crash_after_variables(path):
            write_small_savedmodel(path)
            raise OSError(28, "No space left on device")

        with self.assertRaisesRegex(OSError, "No space left"):
            export_versioned(crash_after_variables, base)
        self.assertEqual(sorted(os.listdir(base)), ["1"])
        tf.saved_model.load(os.path.join(base, "1"))

    def test_incomplete_write_is_refused(self):
        base = os.path.join(self.get_temp_dir(), "m")
        with self.assertRaisesRegex(RuntimeError, "no saved_model.pb"):
            export_versioned(lambda path: os.makedirs(path), base)
        self.assertEqual(os.listdir(base), [])

    def test_keep_last_versions(self):
        base = os.path.join(self.get_temp_dir(), "m")
        for _ in range(4):
            export_versioned(write_small_savedmodel, base, keep=2)
        self.assertEqual(list_versions(base), [3, 4])
        with self.assertRaisesRegex(ValueError, "keep.*0"):
            export_versioned(write_small_savedmodel, base, keep=0)
        with self.assertRaisesRegex(FileNotFoundError, "No SavedModel"):
            resolve_version_dir(os.path.join(self.get_temp_dir(), "empty"))
