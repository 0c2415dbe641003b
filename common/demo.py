"""A short tour of the shared core on synthetic two-modality data.

Run with `python -m common.demo`. Two tasks, each built so
that the answer needs both modalities:

1. Retrieval: "images" are sets of region vectors holding two objects among
   noise, "captions" are word vectors naming the same two objects. Two
   `SelfAttentionBlock` encoders learn a joint space with `ContrastiveLoss`;
   `retrieval_metrics` reports Recall@K on held-out pairs before and after.
2. Fusion: 8 classes = 4 "directions" (seen only in modality A) x 2
   "pitches" (heard only in modality B), so A alone can reach 50% and B alone
   25%. Every fusion layer is trained with the same budget and compared.

Writes `metrics.json` and a confusion-matrix PNG into `--output`.
"""

import argparse
import itertools
import os
import time

import keras
import numpy as np
from keras import ops

from common.data.files import write_json_atomically
from common.layers import (
    CrossModalAttention,
    EarlyFusion,
    GatedFusion,
    LateFusion,
    ModalityGraphFusion,
    SelfAttentionBlock,
)
from common.losses import ContrastiveLoss
from common.metrics import (
    classification_report,
    plot_confusion_matrix,
    retrieval_metrics,
)

NUM_OBJECTS = 12
NUM_REGIONS = 6
NUM_WORDS = 4
REGION_DIM = 16
WORD_DIM = 12


def make_retrieval_data(rng, object_pairs, region_prototypes, word_prototypes):
    """One (regions, words) sample per object pair, with fresh noise."""
    n = len(object_pairs)
    regions = rng.normal(0.0, 1.0, (n, NUM_REGIONS, REGION_DIM))
    words = rng.normal(0.0, 1.0, (n, NUM_WORDS, WORD_DIM))
    for i, (a, b) in enumerate(object_pairs):
        slots = rng.choice(NUM_REGIONS, 2, replace=False)
        regions[i, slots[0]] = region_prototypes[a] + rng.normal(0, 0.3, REGION_DIM)
        regions[i, slots[1]] = region_prototypes[b] + rng.normal(0, 0.3, REGION_DIM)
        places = rng.choice(NUM_WORDS, 2, replace=False)
        words[i, places[0]] = word_prototypes[a] + rng.normal(0, 0.3, WORD_DIM)
        words[i, places[1]] = word_prototypes[b] + rng.normal(0, 0.3, WORD_DIM)
    return regions.astype("float32"), words.astype("float32")


class DualEncoder(keras.Model):
    """Regions and words, each through a SelfAttentionBlock, into one space."""

    def __init__(self, hidden_dim=32, embedding_dim=32, **kwargs):
        super().__init__(**kwargs)
        self.region_in = keras.layers.Dense(hidden_dim, name="region_in")
        self.word_in = keras.layers.Dense(hidden_dim, name="word_in")
        self.region_block = SelfAttentionBlock(2, 16, 64, name="region_block")
        self.word_block = SelfAttentionBlock(2, 16, 64, name="word_block")
        self.region_out = keras.layers.Dense(embedding_dim, name="region_out")
        self.word_out = keras.layers.Dense(embedding_dim, name="word_out")
        self.loss_layer = ContrastiveLoss(name="contrastive")

    def build(self, input_shape):
        regions_shape, words_shape = (tuple(s) for s in input_shape)
        hidden = self.region_in.units
        for dense, block, out, shape in (
            (self.region_in, self.region_block, self.region_out, regions_shape),
            (self.word_in, self.word_block, self.word_out, words_shape),
        ):
            dense.build(shape)
            block.build(shape[:-1] + (hidden,))
            out.build((shape[0], hidden))

    def call(self, inputs, training=None):
        regions, words = inputs
        image = self.region_block(self.region_in(regions), training=training)
        text = self.word_block(self.word_in(words), training=training)
        return (
            ops.normalize(self.region_out(ops.mean(image, 1)), axis=-1),
            ops.normalize(self.word_out(ops.mean(text, 1)), axis=-1),
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return self.loss_layer(*y_pred)


def evaluate_retrieval(model, regions, words):
    image, text = model((regions, words))
    similarity = ops.convert_to_numpy(ops.matmul(image, ops.transpose(text)))
    return retrieval_metrics(similarity, np.arange(len(regions)), ks=(1, 5))


def run_retrieval(rng, epochs, verbose):
    region_prototypes = rng.normal(0, 1.5, (NUM_OBJECTS, REGION_DIM))
    word_prototypes = rng.normal(0, 1.5, (NUM_OBJECTS, WORD_DIM))
    pairs = list(itertools.combinations(range(NUM_OBJECTS), 2))  # 66 distinct
    train_pairs = [pairs[i] for i in rng.integers(0, len(pairs), 3000)]
    train = make_retrieval_data(rng, train_pairs, region_prototypes, word_prototypes)
    test = make_retrieval_data(rng, pairs, region_prototypes, word_prototypes)
    model = DualEncoder()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    before = evaluate_retrieval(model, *test)
    start = time.perf_counter()
    model.fit(train, epochs=epochs, batch_size=64, verbose=verbose)
    seconds = time.perf_counter() - start
    after = evaluate_retrieval(model, *test)
    return before, after, seconds, float(model.loss_layer.scale)


def make_fusion_data(rng, n):
    """Modality A tokens carry the direction, modality B tokens the pitch."""
    direction_protos = rng.normal(0, 1.0, (4, 8))
    pitch_protos = rng.normal(0, 1.0, (2, 6))

    def sample(count):
        direction = rng.integers(0, 4, count)
        pitch = rng.integers(0, 2, count)
        a = rng.normal(0, 1.0, (count, 4, 8)) + direction_protos[direction][:, None]
        b = rng.normal(0, 1.0, (count, 3, 6)) + pitch_protos[pitch][:, None]
        return (a.astype("float32"), b.astype("float32")), direction * 2 + pitch

    return sample(n), sample(n // 4)


def build_fusion_model(fusion, num_classes=8, width=16):
    a_in = keras.Input((4, 8), name="modality_a")
    b_in = keras.Input((3, 6), name="modality_b")
    a = keras.layers.Dense(width, activation="relu")(a_in)
    b = keras.layers.Dense(width, activation="relu")(b_in)
    pool = keras.layers.GlobalAveragePooling1D()
    head = keras.layers.Dense(num_classes, activation="softmax")
    if fusion == "a_only":
        out = head(pool(a))
    elif fusion == "b_only":
        out = head(pool(b))
    elif fusion == "early":
        out = head(EarlyFusion(width, activation="relu")([pool(a), pool(b)]))
    elif fusion == "late":
        logits = [
            keras.layers.Dense(num_classes)(
                keras.layers.Dense(width, activation="relu")(pool(x))
            )
            for x in (a, b)
        ]
        out = keras.layers.Softmax()(LateFusion("weighted")(logits))
    elif fusion == "gated":
        out = head(GatedFusion(width)([pool(a), pool(b)]))
    elif fusion == "cross_attention":
        a_to_b = CrossModalAttention(2, 8)(a, b)
        b_to_a = CrossModalAttention(2, 8)(b, a)
        out = head(keras.layers.Concatenate()([pool(a_to_b), pool(b_to_a)]))
    elif fusion == "graph":
        out = head(ModalityGraphFusion(width, graph_layer="gat")([a, b]))
    else:
        raise ValueError(f"Unknown fusion {fusion!r}.")
    return keras.Model([a_in, b_in], out, name=fusion)


FUSIONS = ("a_only", "b_only", "early", "late", "gated", "cross_attention", "graph")


def run_fusion(rng, epochs, verbose):
    (train_x, train_y), (test_x, test_y) = make_fusion_data(rng, 2400)
    class_names = [
        f"{d}-{p}" for d in ("up", "down", "left", "right") for p in ("low", "high")
    ]
    results = {}
    for fusion in FUSIONS:
        model = build_fusion_model(fusion)
        model.compile(
            optimizer=keras.optimizers.AdamW(3e-3),
            loss="sparse_categorical_crossentropy",
        )
        start = time.perf_counter()
        model.fit(train_x, train_y, epochs=epochs, batch_size=64, verbose=verbose)
        seconds = time.perf_counter() - start
        probabilities = model.predict(test_x, verbose=0)
        report = classification_report(test_y, probabilities, class_names)
        report["train_seconds"] = seconds
        report["parameters"] = model.count_params()
        results[fusion] = report
    return results, class_names


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m common.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--output", default="runs/common-demo", help="output folder")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0, help="Keras fit verbosity")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.output, exist_ok=True)

    print("1) Contrastive retrieval with SelfAttentionBlock encoders (66 test pairs)")
    before, after, seconds, scale = run_retrieval(rng, args.epochs, args.verbose)
    print(
        f"   trained {args.epochs} epochs in {seconds:.1f} s; logit scale {scale:.1f}"
    )
    print(f"   {'':8}{'i2t_r1':>8}{'i2t_r5':>8}{'t2i_r1':>8}{'t2i_r5':>8}{'rsum':>8}")
    for name, m in (("before", before), ("after", after)):
        print(
            f"   {name:8}{m['i2t_r1']:8.1f}{m['i2t_r5']:8.1f}"
            f"{m['t2i_r1']:8.1f}{m['t2i_r5']:8.1f}{m['rsum']:8.1f}"
        )

    print("\n2) Fusion of two modalities, 8 classes (A alone <= 50%, B alone <= 25%)")
    results, class_names = run_fusion(rng, args.epochs, args.verbose)
    print(
        f"   {'fusion':18}{'accuracy':>10}{'macro_f1':>10}{'params':>9}{'seconds':>9}"
    )
    for fusion, report in results.items():
        print(
            f"   {fusion:18}{100 * report['accuracy']:9.1f}%{report['macro_f1']:10.3f}"
            f"{report['parameters']:9d}{report['train_seconds']:9.1f}"
        )
    png = plot_confusion_matrix(
        results["cross_attention"]["confusion_matrix"],
        class_names,
        os.path.join(args.output, "confusion_cross_attention.png"),
        title="cross_attention fusion (demo test split)",
    )
    metrics = {
        "retrieval": {"before": before, "after": after},
        "fusion": {
            name: {
                k: r[k] for k in ("accuracy", "macro_f1", "parameters", "train_seconds")
            }
            for name, r in results.items()
        },
    }
    metrics_path = os.path.join(args.output, "metrics.json")
    write_json_atomically(metrics_path, metrics)
    print(f"\nWrote {metrics_path} and {png}")
    return metrics


if __name__ == "__main__":
    main()
