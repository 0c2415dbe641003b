"""Fault 6: safe loading. `.keras` files load with `safe_mode=True` (code in a
file is refused), nothing in the load paths unpickles, and the search page
escapes ids and queries."""

import ast
import os
import pathlib

import keras
import numpy as np

from common.layers import CrossModalAttention
from common.testing import TestCase

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("common", "retrieval", "video_understanding")


@keras.saving.register_keras_serializable(package="fault_tests")
class Registered(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


class NotRegistered(keras.layers.Layer):
    def call(self, x):
        return x + 1.0


class SafeLoadingTest(TestCase):
    def save(self, model, name):
        path = os.path.join(self.get_temp_dir(), name)
        model.save(path)
        return path

    def test_a_lambda_in_a_keras_file_is_refused(self):
        inputs = keras.Input((3,))
        outputs = keras.layers.Lambda(lambda x: x * 3.0)(inputs)
        path = self.save(keras.Model(inputs, outputs), "lambda.keras")
        with self.assertRaisesRegex(ValueError, "safe_mode"):
            keras.saving.load_model(path, safe_mode=True)

    def test_an_unknown_class_is_refused(self):
        inputs = keras.Input((3,))
        path = self.save(keras.Model(inputs, NotRegistered()(inputs)), "unknown.keras")
        with self.assertRaises(TypeError):
            keras.saving.load_model(path, safe_mode=True)

    def test_the_suite_layers_load_in_safe_mode(self):
        words, regions = keras.Input((5, 8)), keras.Input((7, 8))
        outputs = CrossModalAttention(num_heads=2, key_dim=4)(words, regions)
        model = keras.Model([words, regions], Registered()(outputs))
        path = self.save(model, "suite.keras")
        loaded = keras.saving.load_model(path, safe_mode=True)
        x = [np.ones((1, 5, 8), "float32"), np.ones((1, 7, 8), "float32")]
        np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)

    def test_no_pickle_in_the_load_paths(self):
        """No module of the suite unpickles: no pickle/dill/joblib/marshal
        import, no `np.load` without `allow_pickle=False` defaulting safely,
        no `allow_pickle=True`, no `eval`/`exec`, no `yaml.load`."""
        banned_modules = {"pickle", "cPickle", "dill", "joblib", "marshal", "shelve"}
        problems = []
        for package in PACKAGES:
            for path in sorted((ROOT / package).rglob("*.py")):
                tree = ast.parse(path.read_text(encoding="utf-8"))
                for node in ast.walk(tree):
                    where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        names = [a.name for a in node.names]
                        if isinstance(node, ast.ImportFrom) and node.module:
                            names.append(node.module)
                        if {n.split(".")[0] for n in names} & banned_modules:
                            problems.append(f"{where}: imports {names}")
                    if isinstance(node, ast.Call):
                        func = node.func
                        name = getattr(func, "attr", getattr(func, "id", ""))
                        if name in ("eval", "exec") and isinstance(func, ast.Name):
                            problems.append(f"{where}: {name}()")
                        for keyword in node.keywords:
                            if (
                                keyword.arg == "allow_pickle"
                                and isinstance(keyword.value, ast.Constant)
                                and keyword.value.value is True
                            ):
                                problems.append(f"{where}: allow_pickle=True")
                        owner = getattr(func, "value", None)  # a bare `load()` has none
                        if name == "load" and getattr(owner, "id", "") == "yaml":
                            problems.append(f"{where}: yaml.load")
        self.assertEqual(problems, [])

    def test_the_search_page_escapes_ids_and_queries(self):
        from retrieval.search import write_html

        page = os.path.join(self.get_temp_dir(), "page.html")
        write_html(
            page,
            '<script>alert("q")</script>',
            [("<img src=x onerror=alert(1)>.jpg", 0.9)],
            self.get_temp_dir(),
        )
        text = pathlib.Path(page).read_text(encoding="utf-8")
        self.assertNotIn("<script>", text)
        self.assertNotIn("<img src=x", text)
        self.assertIn("&lt;script&gt;", text)
