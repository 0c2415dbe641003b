"""SavedModel towers (`hub:<folder>`): tiny TF-Hub-style SavedModels written
here, plugged in as the retrieval model's image and text towers, trained,
exported and reloaded with TensorFlow alone."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from common.encoders.hub_encoders import (
    HubImageEncoder,
    HubTextEncoder,
    resolve_saved_model,
)
from common.testing import TestCase
from retrieval.__main__ import main
from retrieval.model import load_trained_model
from tests.retrieval.helpers import TINY_OVERRIDES, check_export_outside_the_project

WORDS = ["a", "big", "small", "red", "green", "blue", "circle", "square"]


def write_image_tower(path, pooled=False):
    """A small conv net on [B, 32, 32, 3] floats in [0, 1] -> a 4x4x12
    feature map (or its pooled [B, 12]), saved like a TF-Hub model."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(12, 3, strides=4, padding="same")(x)
    if pooled:
        x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, x)
    model.export(path, verbose=False)
    return model


class _TextTower(tf.Module):
    """Strings -> `sequence_output` [B, 6, 10] and `input_mask` [B, 6] (1 for
    tokens), its own word table inside: what a TF-Hub text model gives."""

    LENGTH = 6

    def __init__(self):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(WORDS), tf.range(1, len(WORDS) + 1, dtype=tf.int64)
            ),
            default_value=0,
        )
        rng = np.random.default_rng(0)
        self.embeddings = tf.Variable(
            rng.normal(size=(len(WORDS) + 1, 10)).astype("float32"),
            name="embeddings",
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
        words = tf.strings.split(tf.strings.lower(text))
        ids = self.table.lookup(words).to_tensor(shape=[None, self.LENGTH])
        mask = tf.cast(tf.sequence_mask(words.row_lengths(), self.LENGTH), tf.int32)
        features = (
            tf.gather(self.embeddings, ids) * tf.cast(mask, tf.float32)[..., None]
        )
        return {"sequence_output": features, "input_mask": mask}


def write_text_tower(path):
    tower = _TextTower()
    tf.saved_model.save(tower, path, signatures={"serving_default": tower.__call__})
    return tower


def text_reference(tower, texts):
    """NumPy of what the text tower gives (independent of the SavedModel)."""
    table = {w: i + 1 for i, w in enumerate(WORDS)}
    emb = tower.embeddings.numpy()
    features = np.zeros((len(texts), _TextTower.LENGTH, 10), "float32")
    mask = np.zeros((len(texts), _TextTower.LENGTH), bool)
    for b, text in enumerate(texts):
        for position, word in enumerate(text.lower().split()[: _TextTower.LENGTH]):
            features[b, position] = emb[table.get(word, 0)]
            mask[b, position] = True
    return features, mask


class HubEncoderTest(TestCase):
    def test_feature_map_cells_become_regions(self):
        path = os.path.join(self.get_temp_dir(), "image")
        net = write_image_tower(path)
        encoder = HubImageEncoder(path, (32, 32, 3))
        self.assertEqual(encoder.grid_shape, (4, 4))
        pixels = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3))
        out = encoder(pixels.astype("uint8"))
        expected = net(pixels.astype("float32") / 255.0).numpy().reshape(3, 16, 12)
        np.testing.assert_allclose(out["region_features"], expected, atol=1e-5)
        np.testing.assert_allclose(
            out["pooled_features"], expected.mean(axis=1), atol=1e-5
        )

    def test_a_pooled_vector_is_one_region(self):
        path = os.path.join(self.get_temp_dir(), "pooled")
        net = write_image_tower(path, pooled=True)
        encoder = HubImageEncoder(path, (32, 32, 3), pixel_scale="symmetric")
        self.assertEqual(encoder.num_regions, 1)
        pixels = np.full((2, 32, 32, 3), 255, "uint8")
        out = encoder(pixels)
        np.testing.assert_allclose(
            out["region_features"][:, 0], net(np.ones((2, 32, 32, 3))), atol=1e-5
        )

    def test_text_tokens_and_mask(self):
        path = os.path.join(self.get_temp_dir(), "text")
        tower = write_text_tower(path)
        encoder = HubTextEncoder(
            path, output_key="sequence_output", mask_key="input_mask"
        )
        texts = ["a big red circle", "green square", "a zebra"]
        out = encoder(tf.constant(texts))
        features, mask = text_reference(tower, texts)
        np.testing.assert_allclose(out["token_features"], features, atol=1e-6)
        np.testing.assert_array_equal(out["padding_mask"], mask)
        pooled = (features * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        np.testing.assert_allclose(out["pooled_features"], pooled, atol=1e-6)

    def test_several_outputs_need_a_key(self):
        path = os.path.join(self.get_temp_dir(), "text")
        write_text_tower(path)
        with self.assertRaisesRegex(ValueError, "input_mask.*sequence_output"):
            HubTextEncoder(path)
        with self.assertRaisesRegex(ValueError, "no output 'pooled'"):
            HubTextEncoder(path, output_key="pooled", mask_key="input_mask")

    def test_tower_choices_are_read_and_empty_names_refused(self):
        from common.towers import hub_handle, keras_hub_preset, pretrained_choice

        self.assertEqual(hub_handle("hub:/models/x"), "/models/x")
        self.assertEqual(keras_hub_preset("keras_hub:clip_vit"), "clip_vit")
        self.assertIsNone(hub_handle("keras_hub:clip_vit"))
        self.assertFalse(pretrained_choice("vgg16"))
        self.assertTrue(pretrained_choice("keras_hub:x"))
        for choice in ("hub: ", "keras_hub:"):
            with self.assertRaisesRegex(ValueError, "names nothing"):
                pretrained_choice(choice)

    def test_missing_folder_and_failed_download_name_the_tower(self):
        missing = os.path.join(self.get_temp_dir(), "nowhere")
        with self.assertRaisesRegex(FileNotFoundError, "nowhere.*saved_model.pb"):
            resolve_saved_model(missing)
        # No network here: the download fails, and the message says what to do.
        os.environ["TFHUB_CACHE_DIR"] = self.get_temp_dir()
        handle = "https://127.0.0.1:9/no/such/model"
        with self.assertRaisesRegex(OSError, "127.0.0.1.*hub:/path/to/saved_model"):
            resolve_saved_model(handle)


def cli(*args):
    return main([str(a) for a in args])


def variables_of(path):
    """A SavedModel's variable values by name, read with TF alone."""
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "OPTIMIZER" not in name and not name.startswith("_CHECKPOINTABLE")
    }


class HubTowersInTrainingTest(TestCase):
    def train(self, fine_tune):
        tmp = self.get_temp_dir()
        image_path, text_path = (os.path.join(tmp, n) for n in ("image", "text"))
        write_image_tower(image_path)
        write_text_tower(text_path)
        run = os.path.join(tmp, "run")
        args = ["train", "--preset", "demo", "--output", run, "--verbose", "0"]
        overrides = [
            *TINY_OVERRIDES,
            f"model.image_encoder=hub:{image_path}",
            f"model.text_encoder=hub:{text_path}",
            "model.text_encoder_output=sequence_output",
            "model.text_encoder_mask=input_mask",
            f"model.fine_tune_hub={str(fine_tune).lower()}",
            "training.learning_rate=0.01",
            "training.steps_per_epoch=2",
        ]
        for override in overrides:
            args += ["--set", override]
        self.assertEqual(cli(*args), 0)
        return run, image_path, text_path

    def hub_weights(self, model):
        return [
            v.numpy()
            for encoder in (model.image_encoder, model.text_encoder)
            for v in encoder.backbone.weights
        ]

    def test_frozen_towers_stay_frozen_and_export_loads_with_tf_alone(self):
        run, image_path, text_path = self.train(fine_tune=False)
        _, model = load_trained_model(run)
        initial = list(variables_of(image_path).values()) + list(
            variables_of(text_path).values()
        )
        trained = self.hub_weights(model)
        self.assertEqual(len(trained), 5)  # 2 kernels, 2 biases, 1 table
        for value in trained:
            self.assertTrue(any(np.array_equal(value, v) for v in initial))
        with open(os.path.join(run, "config.json")) as f:
            self.assertTrue(json.load(f)["model"]["image_encoder"].startswith("hub:"))
        # the run's outputs (history) show the other weights trained
        self.assertTrue(os.path.isfile(os.path.join(run, "history.csv")))

        def move_the_towers_away():  # the export must hold them itself
            for path in (image_path, text_path):
                os.rename(path, path + ".moved")

        check_export_outside_the_project(self, run, model, before=move_the_towers_away)

    def test_fine_tuned_towers_move(self):
        run, image_path, text_path = self.train(fine_tune=True)
        _, model = load_trained_model(run)
        initial = list(variables_of(image_path).values()) + list(
            variables_of(text_path).values()
        )
        moved = [
            not any(np.array_equal(value, v) for v in initial)
            for value in self.hub_weights(model)
        ]
        self.assertTrue(all(moved), moved)

    def test_the_hub_rate_multiplier_reaches_the_optimizer(self):
        from retrieval.config import RetrievalConfig
        from retrieval.model import build_model
        from retrieval.train import _optimizer

        tmp = self.get_temp_dir()
        image_path = os.path.join(tmp, "image")
        write_image_tower(image_path)
        config = RetrievalConfig()
        config.data.image_size = 32
        config.model.image_encoder = f"hub:{image_path}"
        config.model.fine_tune_hub = True
        config.model.embedding_dim = 8
        config.model.vocabulary_size = 20
        config.training.hub_learning_rate_multiplier = 0.25
        config.training.matching_learning_rate_multiplier = 3.0
        model = build_model(config, vocabulary=WORDS)
        optimizer = _optimizer(config, 10, 1, model)
        scales = {
            id(v): m
            for variables, m in optimizer.variable_multipliers
            for v in variables
        }
        hub = model.image_encoder.backbone.trainable_variables
        self.assertTrue(hub)
        self.assertEqual({scales[id(v)] for v in hub}, {0.25})
        self.assertEqual(
            {scales[id(v)] for v in model.matcher.trainable_variables}, {3.0}
        )
        self.assertNotIn(id(model.region_position), scales)
