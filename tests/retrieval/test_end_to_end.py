"""train -> evaluate -> export -> reload with TF only -> index -> search -> explain."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from common.testing import TestCase
from retrieval.__main__ import main
from retrieval.model import load_trained_model
from tests.retrieval.helpers import TINY_OVERRIDES


def config_weight(run):
    with open(os.path.join(run, "config.json")) as f:
        return json.load(f)["training"]["rerank_weight"]


def cli(*args):
    return main([str(a) for a in args])


def train_args(output):
    args = ["train", "--preset", "demo", "--output", output, "--verbose", "0"]
    for override in TINY_OVERRIDES:
        args += ["--set", override]
    return args


def ranks_after_reranking(similarity, match_of, depth, text_to_image):
    """NumPy: each caption's rank of its image and each image's best rank of
    its captions, when each query's `depth` nearest candidates (by cosine)
    are re-sorted by cosine + match (`match_of(image, text)`) and put first."""
    num_images, num_texts = similarity.shape
    t2i = []
    for t in range(num_texts):
        order = list(np.argsort(-similarity[:, t], kind="stable"))
        top = order[:depth]
        fused = [similarity[i, t] + match_of(i, t) for i in top]
        order = [top[j] for j in np.argsort(-np.array(fused), kind="stable")]
        order += [i for i in np.argsort(-similarity[:, t], kind="stable")[depth:]]
        t2i.append(order.index(text_to_image[t]))
    i2t = []
    for i in range(num_images):
        order = list(np.argsort(-similarity[i], kind="stable"))
        top = order[:depth]
        fused = [similarity[i, t] + match_of(i, t) for t in top]
        order = [top[j] for j in np.argsort(-np.array(fused), kind="stable")]
        order += list(np.argsort(-similarity[i], kind="stable")[depth:])
        i2t.append(min(order.index(t) for t in np.flatnonzero(text_to_image == i)))
    return np.array(i2t), np.array(t2i)


def recalls(i2t, t2i):
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = 100.0 * np.mean(ranks < k)
        out[f"{name}_medr"] = np.floor(np.median(ranks)) + 1
    return out


def check_metrics_against_numpy(test, run, metrics):
    """`evaluate`'s numbers recomputed from the trained model's embeddings:
    Recall@K and median rank by full sorts, re-ranking by the candidates'
    fused scores."""
    from retrieval.data import load_data
    from retrieval.embed import embed_images, embed_texts
    from tests import numpy_reference as ref

    config, model = load_trained_model(run)
    images, captions = load_data(config, verbose=False).subset("test")
    texts = [c for image_captions in captions for c in image_captions]
    text_to_image = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    size = config.data.image_size
    image_embeddings, regions = embed_images(model, images, size, 4, True)
    text_embeddings, tokens, masks = embed_texts(model, texts, 4, True)
    similarity = image_embeddings.astype("float64") @ text_embeddings.T
    expected = ref.recall_by_sorting(similarity, text_to_image, (1, 5, 10))
    for key, value in expected.items():
        test.assertAlmostEqual(metrics[key], value, places=4, msg=key)

    weight, depth = metrics["rerank"]["weight"], metrics["rerank"]["top_k"]
    match = model.match_scores(
        np.repeat(regions, len(texts), axis=0),
        np.tile(tokens, (len(images), 1, 1)),
        np.tile(masks, (len(images), 1)),
    ).numpy()
    match = match.reshape(len(images), len(texts))
    i2t, t2i = ranks_after_reranking(
        similarity, lambda i, t: weight * match[i, t], depth, text_to_image
    )
    for key, value in recalls(i2t, t2i).items():
        test.assertAlmostEqual(metrics["rerank"][key], value, places=4, msg=key)
    # The chosen weight may be 0 (then the order is the cosine's): weight 1,
    # which re-orders candidates, through the same evaluation code.
    from retrieval.embed import evaluate_embeddings

    weighted = evaluate_embeddings(
        model, images, captions, size, 4, rerank_top_k=depth, rerank_weights=(1.0,)
    )["rerank"]
    i2t, t2i = ranks_after_reranking(
        similarity, lambda i, t: match[i, t], depth, text_to_image
    )
    for key, value in recalls(i2t, t2i).items():
        test.assertAlmostEqual(weighted[key], value, places=4, msg=key)
    return match


class RetrievalEndToEndTest(TestCase):
    def test_round_trip(self):
        tmp = self.get_temp_dir()
        run = os.path.join(tmp, "runs", "tiny")
        self.assertEqual(cli(*train_args(run)), 0)
        for name in ("config.json", "vocabulary.txt", "history.csv", "COMPLETE"):
            self.assertTrue(os.path.isfile(os.path.join(run, name)), name)
        self.assertTrue(os.listdir(os.path.join(run, "logs")))

        self.assertEqual(cli("evaluate", "--run", run), 0)
        with open(os.path.join(run, "metrics.json")) as f:
            metrics = json.load(f)
        recalls = [f"{d}_r{k}" for d in ("i2t", "t2i") for k in (1, 5, 10)]
        for key in recalls + ["i2t_medr", "t2i_medr", "rsum"]:
            self.assertIn(key, metrics)
            self.assertIn(key, metrics["rerank"])
        self.assertEqual(metrics["num_images"], 10)
        self.assertEqual(metrics["split"], "test")
        self.assertEqual(metrics["rerank"]["weight"], config_weight(run))
        check_metrics_against_numpy(self, run, metrics)
        # The demo data has boxes.json: the pointing game over every test
        # caption, with its chance level (a 2x2 grid at 32 px).
        self.assertEqual(metrics["pointing_captions"], 50)
        self.assertTrue(0.0 <= metrics["pointing_game"] <= 1.0)
        self.assertTrue(0.25 <= metrics["pointing_chance"] <= 1.0)

        # Data without a test split (COCO's official files): the val split.
        no_test = os.path.join(tmp, "no_test")
        os.makedirs(no_test)
        os.symlink(os.path.join(run, "data", "Images"), os.path.join(no_test, "Images"))
        with open(os.path.join(run, "data", "captions.txt")) as f:
            lines = [line for line in f if not line.rstrip().endswith(",test")]
        with open(os.path.join(no_test, "captions.txt"), "w") as f:
            f.writelines(lines)
        from retrieval.evaluate import evaluate

        fallback = evaluate(run, data_path=no_test, verbose=False)
        self.assertEqual(fallback["split"], "val")
        self.assertEqual(fallback["num_images"], 8)

        models = os.path.join(tmp, "saved_models", "retrieval")
        self.assertEqual(cli("export", "--run", run, "--output", models), 0)
        self.assertEqual(cli("export", "--run", run, "--output", models), 0)
        self.assertEqual(sorted(os.listdir(models)), ["1", "2"])
        version = os.path.join(models, "2")

        images_dir = os.path.join(run, "data", "Images")
        names = sorted(os.listdir(images_dir))[:3]
        image_bytes = [pathlib.Path(images_dir, n).read_bytes() for n in names]
        texts = ["a small red circle at the top left", "a big blue square", ""]
        self.check_savedmodel_matches_keras(run, version, image_bytes, texts)

        index = os.path.join(tmp, "saved_models", "retrieval_index")
        self.assertEqual(
            cli("index", "--model", models, "--images", images_dir, "--output", index),
            0,
        )
        loaded = tf.saved_model.load(os.path.join(index, "1"))
        out = loaded.signatures["search_by_text"](
            text=tf.constant(texts), k=tf.constant([4] * len(texts))
        )
        self.assertEqual(tuple(out["ids"].shape), (3, 4))
        scores = out["scores"].numpy()
        self.assertTrue((np.diff(scores, axis=1) <= 1e-6).all())
        by_image = loaded.signatures["search_by_image"](
            image_bytes=tf.constant(image_bytes[:1]), k=tf.constant([1])
        )
        self.assertEqual(by_image["ids"].numpy()[0, 0].decode(), names[0])
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "larger than"):
            loaded.signatures["search_by_text"](
                text=tf.constant(["a"]), k=tf.constant([10**6])
            )

        page = os.path.join(tmp, "out.html")
        self.assertEqual(
            cli(
                "search",
                "--index",
                index,
                "<script>alert(1)</script>",
                "-k",
                "3",
                "--html",
                page,
            ),
            0,
        )
        html_text = pathlib.Path(page).read_text(encoding="utf-8")
        self.assertNotIn("<script>", html_text)
        self.assertIn("&lt;script&gt;", html_text)
        self.assertEqual(
            cli(
                "search",
                "--index",
                index,
                "--image",
                os.path.join(images_dir, names[0]),
                "-k",
                "2",
            ),
            0,
        )
        self.assertEqual(cli("search", "--index", index, "x", "-k", "0"), 2)

        png = os.path.join(tmp, "explain.png")
        self.assertEqual(
            cli(
                "explain",
                "--run",
                run,
                "--image",
                os.path.join(images_dir, names[0]),
                "--text",
                "a red circle at the top",
                "--output",
                png,
            ),
            0,
        )
        with open(png, "rb") as f:
            self.assertEqual(f.read(4), b"\x89PNG")

    def check_savedmodel_matches_keras(self, run, version, image_bytes, texts):
        config, model = load_trained_model(run)
        from retrieval.export import _decode_batch

        images = _decode_batch(tf.constant(image_bytes), config.data.image_size)
        encoded = model.encode_images(images)
        encoded_text = model.encode_texts(tf.constant(texts))
        expected = {
            "image": encoded["embeddings"].numpy(),
            "text": encoded_text["embeddings"].numpy(),
        }
        # the score signature: cosine + the run's weight x match probability
        match = model.match_scores(
            encoded["regions"], encoded_text["tokens"], encoded_text["mask"]
        ).numpy()
        cosine = (expected["image"] * expected["text"]).sum(axis=1)
        self.assertIsNotNone(config.training.rerank_weight)
        expected["score"] = cosine + config.training.rerank_weight * match
        tmp = self.get_temp_dir()
        script = textwrap.dedent(f"""
            import json, sys
            import numpy as np
            import tensorflow as tf
            m = tf.saved_model.load({version!r})
            raw = [bytes.fromhex(h) for h in {[b.hex() for b in image_bytes]!r}]
            texts = tf.constant({texts!r})
            pixels = tf.stack([tf.io.decode_image(b, channels=3) for b in raw])
            sig = m.signatures
            raw_t = tf.constant(raw)
            out = {{
                "image": sig["embed_image"](image_bytes=raw_t)["embeddings"],
                "text": sig["embed_text"](text=texts)["embeddings"],
                "default": sig["serving_default"](text=texts)["embeddings"],
                "pixels": sig["embed_image_pixels"](images=pixels)["embeddings"],
                "score": sig["score"](image_bytes=raw_t, text=texts)["scores"],
            }}
            out = {{k: v.numpy() for k, v in out.items()}}
            np.savez({os.path.join(tmp, "sm.npz")!r}, **out)
            mine = [n for n in sys.modules
                    if n.split(".")[0] in ("common", "retrieval")]
            sys.exit("imported project modules: %s" % mine if mine else 0)
        """)
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with np.load(os.path.join(tmp, "sm.npz")) as actual:
            np.testing.assert_allclose(actual["image"], expected["image"], atol=1e-5)
            np.testing.assert_allclose(actual["text"], expected["text"], atol=1e-5)
            np.testing.assert_allclose(actual["default"], expected["text"], atol=1e-5)
            np.testing.assert_allclose(actual["score"], expected["score"], atol=1e-5)
            # full-size pixels go through the same resize as encoded bytes
            np.testing.assert_allclose(actual["pixels"], expected["image"], atol=1e-5)

    def test_mirrored_strategy_and_bfloat16(self):
        run = os.path.join(self.get_temp_dir(), "runs", "mirrored")
        args = train_args(run)
        args[args.index("training.epochs=2")] = "training.epochs=1"
        args += ["--strategy", "mirrored", "--precision", "mixed_bfloat16"]
        self.assertEqual(cli(*args), 0)
        with open(os.path.join(run, "config.json")) as f:
            self.assertEqual(json.load(f)["training"]["precision"], "mixed_bfloat16")
        self.assertTrue(
            os.path.isfile(os.path.join(run, "checkpoints", "last.weights.h5"))
        )

    def test_backbone_from_local_file_stays_frozen_for_the_first_epochs(self):
        import keras

        tmp = self.get_temp_dir()
        backbone = keras.applications.VGG16(
            include_top=False, weights=None, input_shape=(32, 32, 3)
        )
        weights_file = os.path.join(tmp, "vgg16_notop.weights.h5")
        backbone.save_weights(weights_file)
        run = os.path.join(tmp, "runs", "frozen")
        args = train_args(run)
        args[args.index("training.epochs=2")] = "training.epochs=1"
        args += [
            "--set",
            f"model.weights={weights_file}",
            "--set",
            "training.freeze_backbone_epochs=1",
        ]
        self.assertEqual(cli(*args), 0)
        _, model = load_trained_model(run)
        for trained, initial in zip(
            model.image_encoder.backbone.weights, backbone.weights, strict=False
        ):
            np.testing.assert_array_equal(trained.numpy(), initial.numpy())
        self.assertTrue(os.path.isfile(os.path.join(run, "phase_0_1.done")))
