"""The deployment files parse with TF Serving's protos and agree with the code."""

import os
import re
import tempfile

import tensorflow as tf

from common.serving import settings
from common.serving.__main__ import main as serving_main
from common.serving.protos import (
    parse_batching_config,
    parse_model_config,
    parse_monitoring_config,
)
from common.testing import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
MODELS = os.path.join(ROOT, "saved_models")


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


class DeploymentFilesTest(TestCase):
    def test_models_config(self):
        config = parse_model_config(os.path.join(MODELS, "models.config"))
        entries = {c.name: c for c in config.model_config_list.config}
        self.assertEqual(sorted(entries), sorted(settings.MODEL_NAMES))
        # The folders the demo's export commands write are the ones served.
        makefile = read("Makefile")
        exported = set(re.findall(r"--output saved_models/(\w+)", makefile))
        self.assertEqual(exported, set(settings.MODEL_NAMES))
        for name, entry in entries.items():
            self.assertEqual(entry.base_path, f"/models/{name}")
            self.assertEqual(entry.model_platform, "tensorflow")
            self.assertTrue(entry.model_version_policy.HasField("latest"))
            self.assertIn("stable", entry.version_labels)

    def test_batching_config_matches_the_warmup_batch_sizes(self):
        batching = parse_batching_config(os.path.join(MODELS, "batching.config"))
        self.assertEqual(
            tuple(batching.allowed_batch_sizes), settings.ALLOWED_BATCH_SIZES
        )
        self.assertEqual(batching.max_batch_size.value, settings.MAX_BATCH_SIZE)
        self.assertEqual(
            batching.allowed_batch_sizes[-1], batching.max_batch_size.value
        )
        self.assertEqual(
            list(batching.allowed_batch_sizes), sorted(batching.allowed_batch_sizes)
        )
        for field in (
            "batch_timeout_micros",
            "num_batch_threads",
            "max_enqueued_batches",
        ):
            self.assertGreater(getattr(batching, field).value, 0, field)

    def test_monitoring_config(self):
        monitoring = parse_monitoring_config(os.path.join(MODELS, "monitoring.config"))
        self.assertTrue(monitoring.prometheus_config.enable)
        self.assertTrue(monitoring.prometheus_config.path.startswith("/"))

    def test_a_misspelt_field_is_refused(self):
        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            f.write("max_batch_sizes { value: 32 }\n")
        with self.assertRaisesRegex(ValueError, "max_batch_sizes"):
            parse_batching_config(f.name)
        os.unlink(f.name)

    def test_serving_image_version_equals_the_training_tensorflow(self):
        # A server older than the exporting TensorFlow fails with
        # "Op type not registered"; both must be the same release.
        self.assertEqual(tf.__version__, settings.SERVING_VERSION)
        pin = re.search(r'"tensorflow==([\d.]+)\.\*"', read("setup.py")).group(1)
        self.assertTrue(settings.SERVING_VERSION.startswith(pin + "."))
        for name in ("docker-compose.gpu.yml", "docker-compose.cpu.yml"):
            images = re.findall(
                r"image:\s*tensorflow/serving:(\S+)", read("saved_models", name)
            )
            self.assertEqual(len(images), 1, name)
            self.assertEqual(images[0].removesuffix("-gpu"), settings.SERVING_VERSION)
        gpu = read("saved_models", "docker-compose.gpu.yml")
        for flag in (
            "--enable_batching=true",
            "--batching_parameters_file=/models/batching.config",
            "--model_config_file=/models/models.config",
            "--monitoring_config_file=/models/monitoring.config",
            "--per_process_gpu_memory_fraction=",
            "8500:8500",
            "8501:8501",
        ):
            self.assertIn(flag, gpu)
        readme = read("README.md")
        self.assertIn(f"tensorflow/serving:{settings.SERVING_VERSION}-gpu", readme)

    def test_promote_moves_the_stable_label(self):
        tmp = self.get_temp_dir()
        config = os.path.join(tmp, "models.config")
        with open(config, "w") as f:
            f.write(read("saved_models", "models.config"))
        for version in ("1", "2", "3"):
            os.makedirs(os.path.join(tmp, "retrieval", version))
            with open(os.path.join(tmp, "retrieval", version, "saved_model.pb"), "w"):
                pass
        self.assertEqual(
            serving_main(["promote", "--config", config, "--model", "retrieval"]), 0
        )
        entries = {
            c.name: c for c in parse_model_config(config).model_config_list.config
        }
        self.assertEqual(entries["retrieval"].version_labels["stable"], 3)
        self.assertEqual(entries["video_understanding"].version_labels["stable"], 1)
        with open(config) as f:
            self.assertTrue(f.read().startswith("# TensorFlow Serving"))
        with self.assertRaises(SystemExit):
            serving_main(
                [
                    "promote",
                    "--config",
                    config,
                    "--model",
                    "retrieval",
                    "--version",
                    "7",
                ]
            )
