import numpy as np

from common.encoders import LSTMTextEncoder
from common.testing import TestCase

VOCABULARY = ["a", "red", "blue", "circle", "square", "at", "the", "top"]


def make_encoder(**kwargs):
    options = dict(
        vocabulary=VOCABULARY, sequence_length=6, embedding_dim=8, hidden_dim=8
    )
    options.update(kwargs)
    return LSTMTextEncoder(**options)


class LSTMTextEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.text = np.array(["A red circle at the top!", "blue square", "", "zebra"])

    def test_tokens_mask_and_pooling(self):
        encoder = make_encoder(projection_dim=4)
        out = encoder(self.text)
        mask = out["padding_mask"].numpy()
        # "a red circle at the top" = 6 tokens (lower-cased, "!" stripped)
        self.assertEqual(mask.sum(1).tolist(), [6, 2, 0, 1])
        ids = encoder.tokenize(self.text).numpy()
        self.assertEqual(ids[0].tolist(), [2, 3, 5, 7, 8, 9])
        self.assertEqual(ids[3, 0], 1)  # out of vocabulary
        features = out["token_features"].numpy()
        expected = np.stack(
            [
                features[i][mask[i]].mean(0) if mask[i].any() else np.zeros(4)
                for i in range(4)
            ]
        )
        self.assertAllClose(out["pooled_features"], expected, atol=1e-6)
        self.assertAllFinite(out)

    def test_padding_is_ignored(self):
        encoder = make_encoder(sequence_length=10)
        short = encoder(np.array(["red circle"]))["pooled_features"]
        encoder_long = make_encoder(sequence_length=12)
        encoder_long(np.array(["red"]))
        encoder_long.set_weights(encoder.get_weights())
        long = encoder_long(np.array(["red circle"]))["pooled_features"]
        self.assertAllClose(short, long, atol=1e-6)

    def test_layer_contract(self):
        self.run_layer_test(
            LSTMTextEncoder,
            dict(
                vocabulary=VOCABULARY,
                sequence_length=6,
                embedding_dim=8,
                hidden_dim=8,
                bidirectional=True,
                projection_dim=4,
            ),
            (self.text,),
            expected_output_shape={
                "token_features": (4, 6, 4),
                "padding_mask": (4, 6),
                "pooled_features": (4, 4),
            },
        )

    def test_adapt_from_training_captions(self):
        encoder = LSTMTextEncoder(
            vocabulary_size=12, sequence_length=5, embedding_dim=4, hidden_dim=4
        )
        encoder.adapt(["a dog runs", "a dog sleeps", "a cat"])
        vocabulary = encoder.get_vocabulary()
        self.assertEqual(vocabulary[:4], ["", "[UNK]", "a", "dog"])
        self.assertEqual(set(vocabulary[4:]), {"runs", "sleeps", "cat"})
        too_small = LSTMTextEncoder(
            vocabulary_size=3, sequence_length=5, embedding_dim=4, hidden_dim=4
        )
        too_small.adapt(["a dog runs"])  # max_tokens caps the table at 3
        self.assertEqual(len(too_small.get_vocabulary()), 3)

    def test_saving_keeps_vocabulary(self):
        encoder = LSTMTextEncoder(
            vocabulary_size=20, sequence_length=5, embedding_dim=4, hidden_dim=4
        )
        encoder.adapt(["a dog runs on the beach", "a cat"])
        revived = self.run_model_saving_test(encoder, (np.array(["a dog", "cat"]),))
        self.assertEqual(revived.layer.get_vocabulary(), encoder.get_vocabulary())

    def test_export_takes_raw_strings(self):
        encoder = make_encoder(bidirectional=True)
        self.run_export_test(encoder, {"text": self.text})

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "vocabulary_size.*neither"):
            LSTMTextEncoder()
        with self.assertRaisesRegex(ValueError, "`vocabulary_size`=3 is smaller"):
            LSTMTextEncoder(vocabulary=VOCABULARY, vocabulary_size=3)
        with self.assertRaisesRegex(ValueError, "sequence_length.*0"):
            make_encoder(sequence_length=0)
        with self.assertRaisesRegex(ValueError, r"\[B\] or \[B, 1\]"):
            make_encoder()(np.array([[["a"]]]))
