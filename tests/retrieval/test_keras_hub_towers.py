"""keras-hub CLIP and SigLIP towers (`keras_hub:<preset folder>`): backbones
built here from small configs with random weights (no download), saved as
local presets, trained with `fit`, exported and reloaded."""

import io
import json
import os

import numpy as np

from common.testing import TestCase
from retrieval.__main__ import main
from retrieval.model import load_trained_model
from tests.retrieval.helpers import TINY_OVERRIDES, check_export_outside_the_project

CAPTIONS = [
    "a big red circle at the top left",
    "there is a small blue square in the centre",
    "the bottom right of the picture has a green triangle",
    "tiny yellow square located left",
    "an image with one purple circle that is huge at the middle",
    "a large orange triangle at the upper right",
]


def clip_preset(folder):
    import keras_hub

    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=8,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(32, 32, 3),
    )
    words = sorted({w for c in CAPTIONS for w in c.split()})
    vocabulary = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    letters = list("abcdefghijklmnopqrstuvwxyz")
    # every word whole, and every letter (alone and word-final): any caption
    # tokenizes without unknown pieces
    pieces = [f"{w}</w>" for w in words] + letters + [f"{c}</w>" for c in letters]
    for piece in pieces + ["re"]:
        vocabulary.setdefault(piece, len(vocabulary))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary),
        embedding_dim=16,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=8,
    )
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=12)
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=["r e"])
    converter = keras_hub.layers.CLIPImageConverter(
        image_size=(32, 32), scale=1 / 255.0
    )
    for part in (backbone, tokenizer, converter):
        part.save_to_preset(folder)
    return backbone


def siglip_preset(folder):
    import keras_hub
    import sentencepiece

    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CAPTIONS * 10),
        model_writer=proto,
        vocab_size=36,
        pad_id=0,
        unk_id=1,
        bos_id=-1,
        eos_id=2,
        pad_piece="<pad>",
        unk_piece="<unk>",
        eos_piece="</s>",
        model_type="word",
        minloglevel=2,
    )
    vision = keras_hub.models.SigLIPVisionEncoder(
        patch_size=8,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        image_shape=(32, 32, 3),
    )
    text = keras_hub.models.SigLIPTextEncoder(
        vocabulary_size=36,
        embedding_dim=16,
        hidden_dim=16,
        num_layers=1,
        num_heads=2,
        intermediate_dim=32,
        max_sequence_length=8,
    )
    backbone = keras_hub.models.SigLIPBackbone(vision, text)
    tokenizer = keras_hub.models.SigLIPTokenizer(proto=proto.getvalue())
    converter = keras_hub.layers.SigLIPImageConverter(
        image_size=(32, 32), scale=1 / 127.5, offset=-1.0
    )
    for part in (backbone, tokenizer, converter):
        part.save_to_preset(folder)
    return backbone


class KerasHubTowersTest(TestCase):
    def run_family(self, write_preset, fine_tune):
        tmp = self.get_temp_dir()
        preset = os.path.join(tmp, "preset")
        backbone = write_preset(preset)
        run = os.path.join(tmp, "run")
        args = ["train", "--preset", "demo", "--output", run, "--verbose", "0"]
        for override in [
            *TINY_OVERRIDES,
            f"model.image_encoder=keras_hub:{preset}",
            f"model.text_encoder=keras_hub:{preset}",
            f"model.fine_tune_hub={str(fine_tune).lower()}",
            "training.learning_rate=0.003",
            "training.steps_per_epoch=3",
        ]:
            args += ["--set", override]
        self.assertEqual(main(args), 0)
        with open(os.path.join(run, "history.csv")) as f:
            losses = [float(row.split(",")[1]) for row in f.read().split()[1:]]
        header = open(os.path.join(run, "history.csv")).readline()
        self.assertTrue(header.split(",")[1] == "global_loss", header)
        self.assertNotEqual(losses[0], losses[-1])
        _, model = load_trained_model(run)
        initial = [v.numpy() for v in backbone.weights]
        vision = model.image_encoder.backbone
        text = model.text_encoder.backbone
        tower_weights = [v.numpy() for v in vision.weights + text.weights]
        moved = [
            not any(w.shape == v.shape and np.array_equal(w, v) for v in initial)
            for w in tower_weights
        ]
        return run, model, moved

    def check_export(self, run, model):
        # the tokenizer's ops come from TensorFlow Text
        check_export_outside_the_project(
            self, run, model, imports="import tensorflow_text"
        )

    def test_clip_frozen_trains_the_rest_and_exports(self):
        run, model, moved = self.run_family(clip_preset, fine_tune=False)
        self.assertFalse(any(moved), moved)
        self.assertEqual(model.grid_shape, (4, 4))  # the class token dropped
        with open(os.path.join(run, "config.json")) as f:
            self.assertIn("keras_hub:", json.load(f)["model"]["text_encoder"])
        self.check_export(run, model)

    def test_siglip_fine_tuned_moves_and_exports(self):
        run, model, moved = self.run_family(siglip_preset, fine_tune=True)
        self.assertGreater(np.mean(moved), 0.9, moved)
        self.assertEqual(model.grid_shape, (4, 4))
        self.check_export(run, model)

    def test_a_missing_preset_folder_is_named(self):
        from common.encoders.keras_hub_encoders import KerasHubImageEncoder

        missing = os.path.join(self.get_temp_dir(), "no_preset")
        with self.assertRaisesRegex(FileNotFoundError, "no_preset.*config.json"):
            KerasHubImageEncoder(missing, (32, 32, 3))
