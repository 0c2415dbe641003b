"""Shared test helpers: layer, serialization, saving and export round trips."""

import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import keras
import numpy as np
import tensorflow as tf

PROJECT_PACKAGES = ("common", "retrieval", "video_understanding")


def _is_static(value):
    return value is None or isinstance(value, (bool, int, float, str))


@keras.saving.register_keras_serializable(package="common_testing")
class LayerModel(keras.Model):
    """Wraps one layer as a savable model (tests only).

    The model's input is the list of the layer's positional arguments followed
    by the tensors of its keyword arguments named in `tensor_kwargs`;
    `static_kwargs` (plain Python values) are passed on every call.
    """

    def __init__(self, layer, tensor_kwargs=(), static_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.tensor_kwargs = list(tensor_kwargs)
        self.static_kwargs = dict(static_kwargs or {})

    def build(self, input_shape=None):
        # The wrapped layer is built from its own build config on loading.
        if not self.layer.built:
            raise ValueError("LayerModel needs a built layer.")

    def call(self, inputs, training=None):
        inputs = list(inputs)
        split = len(inputs) - len(self.tensor_kwargs)
        kwargs = dict(zip(self.tensor_kwargs, inputs[split:], strict=True))
        return self.layer(*inputs[:split], **kwargs, **self.static_kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "layer": keras.saving.serialize_keras_object(self.layer),
                "tensor_kwargs": self.tensor_kwargs,
                "static_kwargs": self.static_kwargs,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


def _to_numpy(structure):
    return keras.tree.map_structure(
        lambda x: keras.ops.convert_to_numpy(x) if x is not None else None,
        structure,
    )


def _shapes(structure):
    """Tensor shapes (or given shapes) as tuples, keeping dict/list structure."""
    if isinstance(structure, dict):
        return {key: _shapes(value) for key, value in structure.items()}
    if isinstance(structure, list) or (
        isinstance(structure, tuple)
        and structure
        and not isinstance(structure[0], int)
        and structure[0] is not None
    ):
        return [_shapes(value) for value in structure]
    if hasattr(structure, "shape"):
        return tuple(structure.shape)
    return tuple(structure)


def _flat_outputs(outputs):
    """Outputs as a flat `{name: tensor}` dict (a lone tensor is `output`)."""
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {f"output_{i}": value for i, value in enumerate(outputs)}
    return {"output": outputs}


class TestCase(unittest.TestCase):
    """`unittest.TestCase` with Keras-layer checks, as keras-hub's tests do.

    Every test starts from the float32 policy and a fixed seed, and gets a
    temporary folder (`self.get_temp_dir()`) removed afterwards.
    """

    def setUp(self):
        super().setUp()
        keras.config.set_dtype_policy("float32")
        keras.utils.set_random_seed(1337)
        self._temp_dir = None

    def tearDown(self):
        keras.config.set_dtype_policy("float32")
        keras.backend.clear_session()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        super().tearDown()

    @staticmethod
    def random_normal(seed, *shapes):
        """float32 standard-normal arrays of `shapes`, drawn one after the
        other from `np.random.default_rng(seed)`."""
        rng = np.random.default_rng(seed)
        return [rng.standard_normal(shape).astype("float32") for shape in shapes]

    def get_temp_dir(self):
        if self._temp_dir is None:
            self._temp_dir = tempfile.mkdtemp(prefix="mmsuite-test-")
        return self._temp_dir

    def assertAllClose(self, actual, expected, atol=1e-6, rtol=1e-6, msg=None):
        actual = keras.tree.flatten(_to_numpy(actual))
        expected = keras.tree.flatten(_to_numpy(expected))
        self.assertEqual(len(actual), len(expected), msg)
        for a, e in zip(actual, expected, strict=True):
            np.testing.assert_allclose(
                np.asarray(a, dtype=np.float64),
                np.asarray(e, dtype=np.float64),
                atol=atol,
                rtol=rtol,
                err_msg=msg or "",
            )

    def assertAllFinite(self, structure):
        for value in keras.tree.flatten(_to_numpy(structure)):
            value = np.asarray(value)
            if np.issubdtype(value.dtype, np.floating):
                self.assertTrue(np.isfinite(value).all(), "non-finite output")

    def run_serialization_test(self, instance):
        """`get_config` / `from_config` and Keras (de)serialization round trips."""
        cls = instance.__class__
        config = instance.get_config()
        json.dumps(config)  # configs must be plain JSON
        revived = cls.from_config(config)
        self.assertEqual(revived.get_config(), config)
        build_config = instance.get_build_config() if instance.built else None
        if build_config:
            # A config that loses an argument shows up as different weights.
            revived.build_from_config(build_config)
            self.assertEqual(
                [tuple(w.shape) for w in revived.weights],
                [tuple(w.shape) for w in instance.weights],
                "weights differ after a config round trip",
            )
        serialized = keras.saving.serialize_keras_object(instance)
        json.dumps(serialized)
        revived = keras.saving.deserialize_keras_object(serialized)
        self.assertIsInstance(revived, cls)
        self.assertEqual(revived.get_config(), config)
        return revived

    def run_layer_test(
        self,
        layer_cls,
        init_kwargs,
        call_args,
        call_kwargs=None,
        expected_output_shape=None,
        expected_num_trainable_weights=None,
        run_training_check=True,
        run_mixed_precision_check=True,
        mixed_precision_atol=0.1,
    ):
        """Builds, calls, serializes, differentiates and mixed-precision-checks.

        Args:
            layer_cls: the layer class.
            init_kwargs: constructor arguments.
            call_args: tuple of positional call arguments.
            call_kwargs: dict of keyword call arguments.
            expected_output_shape: shape (or structure of shapes) of the output.
            expected_num_trainable_weights: int, checked when given.
            run_training_check: every trainable weight must get a gradient of
                `sum(outputs)`, and at least one must be non-zero.
            run_mixed_precision_check: a `mixed_bfloat16` copy with the same
                weights must give bfloat16 outputs close to the float32 ones.
            mixed_precision_atol: tolerance of that comparison.

        Returns:
            The float32 layer.
        """
        call_kwargs = dict(call_kwargs or {})
        layer = layer_cls(**init_kwargs)
        outputs = layer(*call_args, **call_kwargs)
        self.assertAllFinite(outputs)
        if expected_output_shape is not None:
            self.assertEqual(_shapes(outputs), _shapes(expected_output_shape))
        if expected_num_trainable_weights is not None:
            self.assertLen(layer.trainable_weights, expected_num_trainable_weights)
        self.run_serialization_test(layer)

        if run_training_check and layer.trainable_weights:
            with tf.GradientTape() as tape:
                if "training" in inspect.signature(layer.call).parameters:
                    outputs = layer(*call_args, **call_kwargs, training=True)
                else:
                    outputs = layer(*call_args, **call_kwargs)
                total = sum(
                    tf.reduce_sum(tf.cast(x, "float32"))
                    for x in keras.tree.flatten(outputs)
                    if x.dtype.is_floating
                )
            gradients = tape.gradient(total, layer.trainable_weights)
            missing = [
                w.path
                for w, g in zip(layer.trainable_weights, gradients, strict=True)
                if g is None
            ]
            self.assertEqual(missing, [], "weights without a gradient")
            self.assertTrue(
                any(float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients),
                "all gradients are zero",
            )

        if run_mixed_precision_check:
            mixed = layer_cls(**init_kwargs, dtype="mixed_bfloat16")
            mixed(*call_args, **call_kwargs)
            mixed.set_weights(layer.get_weights())
            mixed_outputs = mixed(*call_args, **call_kwargs)
            reference = layer(*call_args, **call_kwargs)
            for value in keras.tree.flatten(mixed_outputs):
                if value.dtype.is_floating:
                    self.assertEqual(value.dtype, tf.bfloat16)
            self.assertAllFinite(mixed_outputs)
            self.assertAllClose(
                mixed_outputs, reference, atol=mixed_precision_atol, rtol=0.05
            )
        return layer

    def assertLen(self, container, expected):
        self.assertEqual(len(container), expected)

    def run_model_saving_test(self, model, call_args, call_kwargs=None, atol=1e-6):
        """`.keras` round trip, loaded with `safe_mode=True`; outputs must match.

        A layer is wrapped in a `LayerModel` first (its tensor keyword
        arguments become inputs, plain Python ones stay fixed).
        """
        call_kwargs = dict(call_kwargs or {})
        if isinstance(model, keras.Model):
            inputs, kwargs = call_args, call_kwargs
        else:
            if not model.built:
                model(*call_args, **call_kwargs)
            static = {k: v for k, v in call_kwargs.items() if _is_static(v)}
            tensors = {k: v for k, v in call_kwargs.items() if not _is_static(v)}
            model = LayerModel(model, list(tensors), static)
            inputs, kwargs = ([list(call_args) + list(tensors.values())], {})
        expected = model(*inputs, **kwargs)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        revived = keras.saving.load_model(path, safe_mode=True)
        actual = revived(*inputs, **kwargs)
        self.assertAllClose(actual, expected, atol=atol, rtol=atol)
        return revived

    def run_export_test(self, model, inputs, call_fn=None, atol=1e-5):
        """Exports with `ExportArchive`, reloads in a TensorFlow-only process.

        Args:
            model: a layer or model to track.
            inputs: dict `{name: np.ndarray}`; the endpoint `serve` takes them
                as named inputs with a free batch axis.
            call_fn: `fn(**inputs)` returning a tensor or dict; defaults to
                `model(*inputs.values())`.
            atol: tolerance of the output comparison.

        The second process imports only TensorFlow and NumPy (and checks that
        no module of this project was imported); its outputs must match the
        in-process ones.
        """
        if call_fn is None:

            def call_fn(**kwargs):
                return model(*kwargs.values())

        names = list(inputs)
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        specs = [
            tf.TensorSpec(
                (None,) + arrays[name].shape[1:],
                tf.string if arrays[name].dtype.kind in "SU" else arrays[name].dtype,
                name=name,
            )
            for name in names
        ]

        def serve(*args):
            outputs = call_fn(**dict(zip(names, args, strict=True)))
            return _flat_outputs(outputs)

        expected = _to_numpy(serve(*[tf.constant(arrays[n]) for n in names]))
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(name="serve", fn=serve, input_signature=specs)
        directory = self.get_temp_dir()
        export_path = os.path.join(directory, "exported")
        archive.write_out(export_path, verbose=False)

        inputs_path = os.path.join(directory, "export_inputs.npz")
        outputs_path = os.path.join(directory, "export_outputs.npz")
        np.savez(inputs_path, **arrays)
        script = textwrap.dedent(
            f"""
            import sys
            import numpy as np
            import tensorflow as tf
            loaded = tf.saved_model.load({export_path!r})
            signature = loaded.signatures["serve"]
            inputs = np.load({inputs_path!r})
            outputs = signature(**{{k: tf.constant(inputs[k]) for k in inputs.files}})
            np.savez({outputs_path!r}, **{{k: v.numpy() for k, v in outputs.items()}})
            project = sorted(
                m for m in sys.modules if m.split(".")[0] in {PROJECT_PACKAGES!r}
            )
            if project:
                sys.exit("project modules imported: " + ", ".join(project))
            """
        )
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-4000:])
        with np.load(outputs_path) as loaded:
            actual = {name: loaded[name] for name in loaded.files}
        self.assertEqual(sorted(actual), sorted(expected))
        for name, value in expected.items():
            np.testing.assert_allclose(
                actual[name], value, atol=atol, rtol=atol, err_msg=name
            )
        return export_path
