import numpy as np

from common.testing import TestCase
from retrieval.model import ImageTextRetrievalModel


def tiny_model(**kwargs):
    options = dict(
        image_shape=(32, 32, 3),
        weights=None,
        feature_layer="block5_conv3",
        embedding_dim=16,
        vocabulary=["a", "red", "blue", "circle", "square"],
        sequence_length=6,
        word_embedding_dim=8,
        text_hidden_dim=8,
        num_heads=2,
        key_dim=8,
        dropout_rate=0.0,
    )
    options.update(kwargs)
    model = ImageTextRetrievalModel(**options)
    model.build()
    return model


class ImageTextRetrievalModelTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.inputs = {
            "images": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
            "text": np.array(["a red circle", "a blue square", "red", "a circle"]),
        }

    def test_outputs(self):
        model = tiny_model()
        out = model(self.inputs)
        self.assertEqual(tuple(out["image_embeddings"].shape), (4, 16))
        self.assertEqual(tuple(out["region_features"].shape), (4, 4, 16))
        self.assertEqual(tuple(out["token_features"].shape), (4, 6, 16))
        norms = np.linalg.norm(out["text_embeddings"].numpy(), axis=1)
        np.testing.assert_allclose(norms, np.ones(4), atol=1e-5)

    def test_match_score_is_mean_word_context_cosine(self):
        model = tiny_model()
        out = model(self.inputs)
        scores = model.match_scores(
            out["region_features"], out["token_features"], out["padding_mask"]
        ).numpy()
        attended = model.matcher(
            out["token_features"],
            out["region_features"],
            query_mask=out["padding_mask"],
        ).numpy()
        tokens = out["token_features"].numpy()
        mask = out["padding_mask"].numpy()
        for i in range(4):
            words = tokens[i][mask[i]]
            context = attended[i][mask[i]]
            cosine = (words * context).sum(1) / (
                np.linalg.norm(words, axis=1) * np.linalg.norm(context, axis=1)
            )
            self.assertAlmostEqual(scores[i], cosine.mean(), places=5)

    def test_losses_are_finite_and_train(self):
        for loss in ("contrastive", "triplet"):
            model = tiny_model(loss=loss)
            out = model(self.inputs)
            value = model.compute_loss(y_pred=out)
            self.assertTrue(np.isfinite(float(value)))
            self.assertGreater(float(model.matching_loss(out)), 0.0)

    def test_config_round_trip_and_saving(self):
        model = tiny_model()
        config = model.get_config()
        revived = ImageTextRetrievalModel.from_config(config)
        self.assertEqual(revived.get_vocabulary(), model.get_vocabulary())
        self.run_model_saving_test(model, (self.inputs,), atol=1e-5)

    def test_bad_loss(self):
        with self.assertRaisesRegex(ValueError, "loss.*'hinge'"):
            tiny_model(loss="hinge")
