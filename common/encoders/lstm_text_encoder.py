"""LSTM text encoder taking raw strings."""

import keras
from keras import ops

from common.encoders.projection import projection_layer
from common.layers.validation import (
    check_optional_positive_int,
    check_positive_int,
    check_rate,
)


@keras.saving.register_keras_serializable(package="common")
class LSTMTextEncoder(keras.layers.Layer):
    """Raw strings -> token features, padding mask and a pooled vector.

    A `keras.layers.TextVectorization` inside turns strings into token ids
    (index 0 = padding, 1 = out-of-vocabulary), so an exported model takes
    plain text. Tokens are embedded and run through a (bidirectional) LSTM;
    the pooled vector is the mean of the unpadded token features.

    Args:
        vocabulary_size: int or None. Size of the token table including the
            padding and OOV entries; the vocabulary is learned with `adapt()`.
        vocabulary: list of str or None. A fixed vocabulary (without the
            padding and OOV entries); sets `vocabulary_size` when omitted.
        sequence_length: int. Tokens kept per text (padded or truncated).
        embedding_dim: int. Token embedding size.
        hidden_dim: int. LSTM units (per direction).
        bidirectional: bool. Run the LSTM both ways and concatenate.
        projection_dim: int or None. Project the token features to this size.
        dropout_rate: float. Dropout on the embeddings in training.
        standardize: TextVectorization's standardisation.
        **kwargs: base layer arguments.

    Call arguments:
        text: string tensor `[B]` (or `[B, 1]`).
        training: bool.

    Returns:
        A dict: `token_features` `[B, L, D]`, `padding_mask` bool `[B, L]`
        (`True` for real tokens) and `pooled_features` `[B, D]`; `D` is
        `projection_dim`, else `hidden_dim` (doubled when bidirectional).

    Example:

    >>> import numpy as np
    >>> encoder = LSTMTextEncoder(vocabulary=["a", "red", "circle"],
    ...                           sequence_length=6, embedding_dim=8, hidden_dim=8)
    >>> out = encoder(np.array(["a red circle", "a square"]))
    >>> out["padding_mask"].numpy().sum(axis=1).tolist()
    [3, 2]

    Reference:
        Hochreiter and Schmidhuber, "Long Short-Term Memory", Neural
        Computation 1997.
    """

    def __init__(
        self,
        vocabulary_size=None,
        vocabulary=None,
        sequence_length=32,
        embedding_dim=128,
        hidden_dim=256,
        bidirectional=False,
        projection_dim=None,
        dropout_rate=0.0,
        standardize="lower_and_strip_punctuation",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if vocabulary_size is None and vocabulary is None:
            raise ValueError(
                "LSTMTextEncoder needs `vocabulary_size` (then call adapt()) or "
                "a `vocabulary`; received neither."
            )
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.bidirectional = bool(bidirectional)
        self.projection_dim = check_optional_positive_int(
            "projection_dim", projection_dim
        )
        self.dropout_rate = check_rate("dropout_rate", dropout_rate)
        self.standardize = standardize
        if vocabulary is not None:
            vocabulary = [str(token) for token in vocabulary]
            # A vocabulary read back from get_vocabulary() starts with the
            # padding and OOV entries; TextVectorization adds its own.
            if vocabulary[:2] == ["", "[UNK]"]:
                vocabulary = vocabulary[2:]
            table_size = len(vocabulary) + 2
            if vocabulary_size is not None and vocabulary_size < table_size:
                raise ValueError(
                    f"`vocabulary_size`={vocabulary_size} is smaller than the "
                    f"{table_size} entries of the given vocabulary (with padding "
                    "and OOV)."
                )
            vocabulary_size = vocabulary_size or table_size
        self.vectorizer = keras.layers.TextVectorization(
            max_tokens=vocabulary_size,
            standardize=standardize,
            output_mode="int",
            output_sequence_length=self.sequence_length,
            vocabulary=vocabulary,
            name="vectorizer",
        )
        self.vocabulary_size = check_positive_int("vocabulary_size", vocabulary_size)
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim, dtype=policy, name="embedding"
        )
        self.embedding_dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=policy, name="embedding_dropout"
        )
        lstm = keras.layers.LSTM(
            self.hidden_dim, return_sequences=True, dtype=policy, name="lstm"
        )
        self.lstm = (
            keras.layers.Bidirectional(lstm, dtype=policy, name="bidirectional_lstm")
            if self.bidirectional
            else lstm
        )
        self.projection = projection_layer(self.projection_dim, policy)

    @property
    def feature_dim(self):
        if self.projection_dim:
            return self.projection_dim
        return self.hidden_dim * (2 if self.bidirectional else 1)

    def adapt(self, texts, batch_size=None, steps=None):
        """Learns the vocabulary from training texts (a list, array or dataset)."""
        self.vectorizer.adapt(texts, batch_size=batch_size, steps=steps)
        if self.vectorizer.vocabulary_size() > self.vocabulary_size:
            raise ValueError(
                f"The adapted vocabulary has {self.vectorizer.vocabulary_size()} "
                f"entries, more than `vocabulary_size`={self.vocabulary_size}."
            )

    def get_vocabulary(self):
        """The token table: padding `""`, OOV `"[UNK]"`, then the words."""
        return [str(token) for token in self.vectorizer.get_vocabulary()]

    def build(self, text_shape):
        length = self.sequence_length
        self.embedding.build((None, length))
        self.lstm.build((None, length, self.embedding_dim))
        if self.projection is not None:
            lstm_dim = self.hidden_dim * (2 if self.bidirectional else 1)
            self.projection.build((None, length, lstm_dim))

    def tokenize(self, text):
        """Strings `[B]` or `[B, 1]` -> int token ids `[B, sequence_length]`."""
        if text.shape is not None and len(text.shape) == 2:
            text = ops.squeeze(text, axis=-1)
        if text.shape is not None and len(text.shape) != 1:
            raise ValueError(
                f"Text must be a string tensor [B] or [B, 1]; received shape "
                f"{tuple(text.shape)}."
            )
        return self.vectorizer(text)

    def call(self, text, training=None):
        token_ids = self.tokenize(text)
        padding_mask = ops.not_equal(token_ids, 0)
        embedded = self.embedding(token_ids)
        embedded = self.embedding_dropout(embedded, training=training)
        # cuDNN rejects zero-length sequences: the first step of an empty text
        # is always run (on the padding embedding); pooling uses the real mask.
        first_step = ops.arange(self.sequence_length)[None, :] == 0
        lstm_mask = ops.logical_or(padding_mask, first_step)
        features = self.lstm(embedded, mask=lstm_mask, training=training)
        if self.projection is not None:
            features = self.projection(features)
        weights = ops.cast(padding_mask, features.dtype)[..., None]
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        pooled = ops.sum(features * weights, axis=1) / count
        return {
            "token_features": features,
            "padding_mask": padding_mask,
            "pooled_features": pooled,
        }

    def compute_output_shape(self, text_shape):
        batch = text_shape[0]
        return {
            "token_features": (batch, self.sequence_length, self.feature_dim),
            "padding_mask": (batch, self.sequence_length),
            "pooled_features": (batch, self.feature_dim),
        }

    def get_config(self):
        config = super().get_config()
        vocabulary = [str(token) for token in self.vectorizer.get_vocabulary()]
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                # Only when learned or given; otherwise adapt() comes later.
                "vocabulary": vocabulary if len(vocabulary) > 2 else None,
                "sequence_length": self.sequence_length,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "bidirectional": self.bidirectional,
                "projection_dim": self.projection_dim,
                "dropout_rate": self.dropout_rate,
                "standardize": self.standardize,
            }
        )
        return config
