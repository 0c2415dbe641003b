"""Embedding latency and SavedModel size per tower choice: VGG16 + LSTM (the
defaults), SavedModel towers (`hub:`: a MobileNetV2 feature map and a word
table text model, written here as TF-Hub-style SavedModels) and a keras-hub
CLIP (`keras_hub:`: a small ViT and text transformer saved as a preset).

Random weights throughout (speed does not depend on them). Each retrieval
model is exported like `retrieval export` and loaded back as TF Serving
would; `embed_image_pixels` (uint8 pixels) and `embed_text` are timed at
batch 1 and 32 (medians), and the export's size on disk is reported.

    python bench/towers.py [--quick] [--image-size 224]
"""

import os
import shutil
import sys
import tempfile

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, median_time, result, write_report  # noqa: E402
from retrieval.config import get_config  # noqa: E402
from retrieval.export import make_export_archive  # noqa: E402
from retrieval.model import build_model  # noqa: E402

WORDS = (
    "a an the red blue green yellow dog cat man woman child runs jumps sits "
    "on in at of with grass beach street ball water snow park two three"
).split()
CAPTION = "a brown dog runs on the grass with a red ball"


def folder_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def write_hub_image(path, size):
    import keras

    net = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    net.export(path, verbose=False)


class _WordTable(tf.Module):
    """Strings -> per-word embeddings `[B, 32, 256]` and a mask."""

    def __init__(self):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(WORDS), tf.range(1, len(WORDS) + 1, dtype=tf.int64)
            ),
            default_value=0,
        )
        rng = np.random.default_rng(0)
        self.embeddings = tf.Variable(rng.normal(size=(10_000, 256)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
        words = tf.strings.split(tf.strings.lower(text))
        ids = self.table.lookup(words).to_tensor(shape=[None, 32])
        mask = tf.sequence_mask(words.row_lengths(), 32)
        return {"sequence_output": tf.gather(self.embeddings, ids), "mask": mask}


def write_hub_text(path):
    module = _WordTable()
    tf.saved_model.save(module, path, signatures={"serving_default": module.__call__})


def write_clip_preset(path, size):
    import keras_hub

    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=16,
        hidden_dim=256,
        num_layers=4,
        num_heads=4,
        intermediate_dim=1024,
        image_shape=(size, size, 3),
    )
    vocabulary = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    letters = list("abcdefghijklmnopqrstuvwxyz")
    for piece in [f"{w}</w>" for w in WORDS] + letters + [f"{c}</w>" for c in letters]:
        vocabulary.setdefault(piece, len(vocabulary))
    vocabulary.setdefault("re", len(vocabulary))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary),
        embedding_dim=256,
        hidden_dim=256,
        num_layers=4,
        num_heads=4,
        intermediate_dim=1024,
        max_sequence_length=32,
    )
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=256)
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=["r e"])
    converter = keras_hub.layers.CLIPImageConverter(
        image_size=(size, size), scale=1 / 255.0
    )
    for part in (backbone, tokenizer, converter):
        part.save_to_preset(path)


def measure(name, overrides, size, repeats, folder):
    import keras

    keras.config.set_dtype_policy("float32")
    config = get_config(
        "flickr8k",
        [
            "model.weights=none",
            f"data.image_size={size}",
            "model.sequence_length=32",
            "training.freeze_backbone_epochs=0",
            *overrides,
        ],
    )
    model = build_model(config, vocabulary=WORDS)
    export = os.path.join(folder, f"export_{name}")
    make_export_archive(model, size).write_out(export, verbose=False)
    del model
    loaded = tf.saved_model.load(export)
    image, text = (loaded.signatures[s] for s in ("embed_image_pixels", "embed_text"))
    rng = np.random.default_rng(0)
    out = []
    for batch in (1, 32):
        pixels = tf.constant(rng.integers(0, 256, (batch, size, size, 3)), tf.uint8)
        texts = tf.constant([CAPTION] * batch)
        image_s = median_time(lambda p=pixels: image(images=p), repeats, 2)
        text_s = median_time(lambda t=texts: text(text=t), repeats, 2)
        out.append(result(f"{name}_embed_image_b{batch}_ms", 1000 * image_s, "ms"))
        out.append(result(f"{name}_embed_text_b{batch}_ms", 1000 * text_s, "ms"))
    out.append(result(f"{name}_savedmodel_mib", folder_bytes(export) / 2**20, "MiB"))
    shutil.rmtree(export)
    return out


def main(argv=None):
    parser = bench_parser(__doc__, "towers", quick_help="fewer repeats, 128 px")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args(argv)
    size = 128 if args.quick else args.image_size
    repeats = 3 if args.quick else 9
    results = []
    with tempfile.TemporaryDirectory() as folder:
        hub_image, hub_text = (os.path.join(folder, n) for n in ("himage", "htext"))
        write_hub_image(hub_image, size)
        write_hub_text(hub_text)
        choices = [
            ("vgg16_lstm", []),
            (
                "hub_mobilenetv2_wordtable",
                [
                    f"model.image_encoder=hub:{hub_image}",
                    f"model.text_encoder=hub:{hub_text}",
                    "model.text_encoder_output=sequence_output",
                    "model.text_encoder_mask=mask",
                ],
            ),
        ]
        try:
            import keras_hub  # noqa: F401

            preset = os.path.join(folder, "clip")
            write_clip_preset(preset, size)
            choices.append(
                (
                    "keras_hub_clip_small",
                    [
                        f"model.image_encoder=keras_hub:{preset}",
                        f"model.text_encoder=keras_hub:{preset}",
                    ],
                )
            )
        except ImportError:
            print("keras-hub not installed: the keras_hub tower is not measured")
        for name, overrides in choices:
            print(f"-- {name}", flush=True)
            results += measure(name, overrides, size, repeats, folder)
    settings = {"image_size": size, "repeats": repeats, "sequence_length": 32}
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
