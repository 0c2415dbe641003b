"""The image-text retrieval model: VGG16 regions + LSTM words + cross-attention."""

import keras
from keras import ops

from common.encoders import LSTMTextEncoder, VGG16ImageEncoder
from common.encoders.hub_encoders import HubImageEncoder, HubTextEncoder, hub_handle
from common.losses import ContrastiveLoss, hard_negative_triplet_loss
from common.towers import keras_hub_preset
from common.training.config import arguments_for
from common.training.prebuilt import PrebuiltModel
from retrieval.matching import (
    ImageTextMatchingHead,
    itm_loss,
    negative_logits,
    sample_negatives,
)


def tf_constant(text):
    import tensorflow as tf

    return text if isinstance(text, tf.Tensor) else tf.constant(text)


@keras.saving.register_keras_serializable(package="retrieval")
class ImageTextRetrievalModel(PrebuiltModel):
    """Dual encoder with a cross-modal matching head.

    Images go through `VGG16ImageEncoder` (region features, projected to
    `embedding_dim`, plus a learned position embedding per region); captions
    through `LSTMTextEncoder` (token features and padding mask). Global
    embeddings (L2-normalised) come from the flattened regions and the mean
    of the tokens, and are trained with `contrastive_loss` (InfoNCE with a
    learned temperature) or the VSE++ triplet loss. The matching head is an
    `ImageTextMatchingHead`: the caption's tokens attend to the image's
    regions through `CrossModalAttention`, then to each other, and a
    classifier says whether the pair matches. It is trained with binary
    cross-entropy on the positives and on hard negatives sampled from the
    dual encoder's in-batch similarity (both directions), and re-ranks the
    dual encoder's top candidates.

    Args:
        image_shape: tuple `(H, W, 3)` of the images.
        weights: VGG16 weights: `"imagenet"`, `None`, or a local file.
        feature_layer: VGG16 layer giving the regions.
        embedding_dim: joint embedding width.
        vocabulary_size: token table size (with padding and OOV).
        vocabulary: optional fixed vocabulary (otherwise call `adapt`).
        sequence_length: tokens per caption.
        word_embedding_dim: token embedding size.
        text_hidden_dim: LSTM units per direction.
        bidirectional: bidirectional LSTM.
        num_heads: matching-head attention heads.
        key_dim: matching-head size per head.
        matching_layers: matching-head fusion blocks.
        negative_temperature: softmax temperature of hard-negative sampling.
        dropout_rate: dropout of the text encoder and attention.
        loss: `"contrastive"` or `"triplet"`.
        margin: margin of the triplet loss.
        matching_loss_weight: weight of the matching loss.
        image_encoder: `"vgg16"`, `"hub:<handle or SavedModel folder>"`
            (`common.encoders.hub_encoders.HubImageEncoder`) or
            `"keras_hub:<preset or folder>"` (a CLIP/SigLIP vision encoder,
            `common.encoders.keras_hub_encoders`); `weights` and
            `feature_layer` are then unused.
        text_encoder: `"lstm"`, `"hub:<handle or folder>"` (a SavedModel
            taking strings, its tokenizer inside; `sequence_length` is then
            the SavedModel's) or `"keras_hub:<preset or folder>"` (the
            preset's text encoder and tokenizer); the vocabulary settings
            are then unused.
        hub_signature: the signature the hub towers are called through.
        image_encoder_output: the hub image tower's output key.
        image_pixel_scale: pixel range the hub image tower expects:
            `"unit"`, `"symmetric"` or `"raw"`.
        text_encoder_output: the hub text tower's features output key.
        text_encoder_mask: the hub text tower's token-mask output key.
        fine_tune_hub: train the hub towers' variables (frozen by default).
        **kwargs: base model arguments.

    Call arguments:
        inputs: dict with `images` (uint8 or float 0-255 `[B, H, W, 3]`) and
            `text` (string `[B]`).
        training: bool.

    Returns:
        A dict: `image_embeddings` and `text_embeddings` `[B, embedding_dim]`
        (unit norm), `region_features` `[B, R, embedding_dim]`,
        `token_features` `[B, L, embedding_dim]`, `padding_mask` `[B, L]`.

    Example:

    >>> import numpy as np
    >>> model = ImageTextRetrievalModel(image_shape=(32, 32, 3), weights=None,
    ...     embedding_dim=16, vocabulary=["a", "dog"], sequence_length=4,
    ...     word_embedding_dim=8, text_hidden_dim=8, key_dim=8)
    >>> out = model({"images": np.zeros((2, 32, 32, 3), "uint8"),
    ...              "text": np.array(["a dog", "a cat"])})
    >>> tuple(out["image_embeddings"].shape)
    (2, 16)

    Reference:
        Lee et al., "Stacked Cross Attention for Image-Text Matching", ECCV
        2018; Faghri et al., VSE++, BMVC 2018; Radford et al., CLIP, ICML 2021.
    """

    def __init__(
        self,
        image_shape=(224, 224, 3),
        weights="imagenet",
        feature_layer="block5_pool",
        embedding_dim=512,
        vocabulary_size=None,
        vocabulary=None,
        sequence_length=32,
        word_embedding_dim=300,
        text_hidden_dim=512,
        bidirectional=True,
        num_heads=4,
        key_dim=64,
        matching_layers=1,
        negative_temperature=0.1,
        dropout_rate=0.1,
        loss="contrastive",
        margin=0.2,
        matching_loss_weight=1.0,
        image_encoder="vgg16",
        text_encoder="lstm",
        hub_signature="serving_default",
        image_encoder_output=None,
        image_pixel_scale="unit",
        text_encoder_output=None,
        text_encoder_mask=None,
        fine_tune_hub=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if loss not in ("contrastive", "triplet"):
            raise ValueError(
                f"`loss` must be 'contrastive' or 'triplet'; received {loss!r}."
            )
        self.image_shape = tuple(int(d) for d in image_shape)
        self.feature_layer = feature_layer
        self.embedding_dim = int(embedding_dim)
        self.sequence_length = int(sequence_length)
        self.word_embedding_dim = int(word_embedding_dim)
        self.text_hidden_dim = int(text_hidden_dim)
        self.bidirectional = bool(bidirectional)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.matching_layers = int(matching_layers)
        self.negative_temperature = float(negative_temperature)
        self.dropout_rate = float(dropout_rate)
        self.loss_name = loss
        self.margin = float(margin)
        self.matching_loss_weight = float(matching_loss_weight)

        self.towers = {
            "image_encoder": str(image_encoder),
            "text_encoder": str(text_encoder),
            "hub_signature": hub_signature,
            "image_encoder_output": image_encoder_output,
            "image_pixel_scale": image_pixel_scale,
            "text_encoder_output": text_encoder_output,
            "text_encoder_mask": text_encoder_mask,
            "fine_tune_hub": bool(fine_tune_hub),
        }
        image_hub, text_hub = hub_handle(image_encoder), hub_handle(text_encoder)
        image_preset = keras_hub_preset(image_encoder)
        text_preset = keras_hub_preset(text_encoder)
        if image_preset is not None:
            from common.encoders.keras_hub_encoders import KerasHubImageEncoder

            self.image_encoder = KerasHubImageEncoder(
                image_preset,
                self.image_shape,
                fine_tune=fine_tune_hub,
                projection_dim=self.embedding_dim,
                name="image_encoder",
            )
        elif image_hub is not None:
            self.image_encoder = HubImageEncoder(
                image_hub,
                self.image_shape,
                signature=hub_signature,
                output_key=image_encoder_output,
                pixel_scale=image_pixel_scale,
                fine_tune=fine_tune_hub,
                projection_dim=self.embedding_dim,
                name="image_encoder",
            )
        elif image_encoder == "vgg16":
            self.image_encoder = VGG16ImageEncoder(
                self.image_shape,
                weights=weights,
                feature_layer=feature_layer,
                projection_dim=self.embedding_dim,
                name="image_encoder",
            )
        else:
            raise ValueError(
                "`image_encoder` must be 'vgg16' or 'hub:<handle or SavedModel "
                f"folder>'; received {image_encoder!r}."
            )
        if text_preset is not None:
            from common.encoders.keras_hub_encoders import KerasHubTextEncoder

            self.text_encoder = KerasHubTextEncoder(
                text_preset,
                sequence_length=self.sequence_length,
                fine_tune=fine_tune_hub,
                projection_dim=self.embedding_dim,
                name="text_encoder",
            )
            self.vocabulary_size = None
        elif text_hub is not None:
            self.text_encoder = HubTextEncoder(
                text_hub,
                signature=hub_signature,
                output_key=text_encoder_output,
                mask_key=text_encoder_mask,
                fine_tune=fine_tune_hub,
                projection_dim=self.embedding_dim,
                name="text_encoder",
            )
            self.sequence_length = self.text_encoder.sequence_length
            self.vocabulary_size = None
        elif text_encoder == "lstm":
            self.text_encoder = LSTMTextEncoder(
                vocabulary_size=vocabulary_size,
                vocabulary=vocabulary,
                sequence_length=self.sequence_length,
                embedding_dim=self.word_embedding_dim,
                hidden_dim=self.text_hidden_dim,
                bidirectional=self.bidirectional,
                projection_dim=self.embedding_dim,
                dropout_rate=self.dropout_rate,
                name="text_encoder",
            )
            self.vocabulary_size = self.text_encoder.vocabulary_size
        else:
            raise ValueError(
                "`text_encoder` must be 'lstm' or 'hub:<handle or SavedModel "
                f"folder>'; received {text_encoder!r}."
            )
        self.num_regions = self.image_encoder.num_regions
        self.grid_shape = self.image_encoder.grid_shape
        # Flattened regions keep where things are, which captions often say.
        self.image_head = keras.layers.Dense(self.embedding_dim, name="image_embedding")
        self.text_head = keras.layers.Dense(self.embedding_dim, name="text_embedding")
        self.matcher = ImageTextMatchingHead(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            hidden_dim=2 * self.embedding_dim,
            num_layers=self.matching_layers,
            dropout_rate=self.dropout_rate,
            name="matcher",
        )
        self.negative_seed = keras.random.SeedGenerator(0, name="negative_seed")
        self.contrastive = ContrastiveLoss(name="contrastive")
        self.global_loss_tracker = keras.metrics.Mean(name="global_loss")
        self.matching_loss_tracker = keras.metrics.Mean(name="matching_loss")

    def build(self, input_shape=None):
        batch = None
        self.image_encoder.build((batch,) + self.image_shape)
        self.text_encoder.build((batch,))
        self.region_position = self.add_weight(
            name="region_position",
            shape=(self.num_regions, self.embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )
        self.image_head.build((batch, self.num_regions * self.embedding_dim))
        self.text_head.build((batch, self.embedding_dim))
        self.matcher.build(
            (batch, self.num_regions, self.embedding_dim),
            (batch, self.sequence_length, self.embedding_dim),
        )

    # -- encoders ---------------------------------------------------------

    def encode_images(self, images, training=None):
        """Images -> `{"embeddings": [B, E] unit norm, "regions": [B, R, E]}`."""
        features = self.image_encoder(images, training=training)
        regions = features["region_features"] + ops.cast(
            self.region_position, features["region_features"].dtype
        )
        flat = ops.reshape(regions, (-1, self.num_regions * self.embedding_dim))
        embeddings = ops.normalize(ops.cast(self.image_head(flat), "float32"), axis=-1)
        return {"embeddings": embeddings, "regions": regions}

    def encode_texts(self, text, training=None):
        """Strings -> `{"embeddings", "tokens" [B, L, E], "mask" [B, L]}`."""
        features = self.text_encoder(text, training=training)
        embeddings = ops.normalize(
            ops.cast(self.text_head(features["pooled_features"]), "float32"), axis=-1
        )
        return {
            "embeddings": embeddings,
            "tokens": features["token_features"],
            "mask": features["padding_mask"],
        }

    def match_logits(
        self, regions, tokens, mask, return_attention=False, training=None
    ):
        """Matching-head logits of paired rows `[B]` (and the first block's
        token-to-region attention `[B, heads, L, R]`)."""
        return self.matcher(
            regions,
            tokens,
            mask,
            return_attention_scores=return_attention,
            training=training,
        )

    def match_scores(
        self, regions, tokens, mask, return_attention=False, training=None
    ):
        """Match probabilities of paired rows: `[B]` in [0, 1]."""
        out = self.match_logits(regions, tokens, mask, return_attention, training)
        if return_attention:
            return ops.sigmoid(out[0]), out[1]
        return ops.sigmoid(out)

    @property
    def has_vocabulary(self):
        """Whether the text tower learns its vocabulary (`adapt`)."""
        return isinstance(self.text_encoder, LSTMTextEncoder)

    def adapt(self, captions, batch_size=256):
        """Learns the vocabulary from training captions (a hub text tower
        brings its own tokenizer: nothing to learn)."""
        if self.has_vocabulary:
            self.text_encoder.adapt(captions, batch_size=batch_size)

    def get_vocabulary(self):
        return self.text_encoder.get_vocabulary() if self.has_vocabulary else []

    def token_words(self, text):
        """Each caption's token strings `[B, L]` (`""` for padding): the
        vocabulary's words, or `"#1"`, `"#2"`, ... for a hub text tower
        (whose tokens are not words of a vocabulary here)."""
        import numpy as np

        text = tf_constant(text)
        if self.has_vocabulary:
            ids = self.text_encoder.tokenize(text).numpy()
            return np.asarray(self.get_vocabulary(), dtype=object)[ids]
        mask = ops.convert_to_numpy(self.encode_texts(text)["mask"])
        labels = np.array([f"#{i + 1}" for i in range(mask.shape[1])], dtype=object)
        return np.where(mask, labels[None, :], "")

    # -- training ---------------------------------------------------------

    def call(self, inputs, training=None):
        images = self.encode_images(inputs["images"], training=training)
        texts = self.encode_texts(inputs["text"], training=training)
        return {
            "image_embeddings": images["embeddings"],
            "text_embeddings": texts["embeddings"],
            "region_features": images["regions"],
            "token_features": texts["tokens"],
            "padding_mask": texts["mask"],
        }

    def matching_loss(self, outputs, training=None):
        """ITM binary cross-entropy on each pair and on a hard negative image
        for each caption and a hard negative caption for each image, sampled
        from the in-batch similarity (`retrieval.matching`)."""
        images, texts = outputs["image_embeddings"], outputs["text_embeddings"]
        regions, tokens = outputs["region_features"], outputs["token_features"]
        mask = outputs["padding_mask"]
        similarity = ops.stop_gradient(ops.matmul(images, ops.transpose(texts)))
        image_logits, text_logits = negative_logits(
            similarity,
            ops.stop_gradient(ops.matmul(images, ops.transpose(images))),
            ops.stop_gradient(ops.matmul(texts, ops.transpose(texts))),
            self.negative_temperature,
        )
        negative_image = sample_negatives(image_logits, self.negative_seed)
        negative_text = sample_negatives(text_logits, self.negative_seed)
        positive = self.match_logits(regions, tokens, mask, training=training)
        wrong_image = self.match_logits(
            ops.take(regions, negative_image, axis=0), tokens, mask, training=training
        )
        wrong_text = self.match_logits(
            regions,
            ops.take(tokens, negative_text, axis=0),
            ops.take(mask, negative_text, axis=0),
            training=training,
        )
        return itm_loss(positive, wrong_image, wrong_text)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        import tensorflow as tf

        images, texts = y_pred["image_embeddings"], y_pred["text_embeddings"]
        # Under tf.distribute each replica sees its share of the batch. Keras
        # sums the replicas' gradients, so the loss returned here is divided
        # by the number of replicas (as Keras' own losses are), and the
        # contrastive loss takes its negatives from the whole global batch.
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if self.loss_name == "contrastive" and replicas > 1:
            offset = context.replica_id_in_sync_group * ops.shape(images)[0]
            global_loss = self.contrastive(
                images,
                texts,
                context.all_gather(images, axis=0),
                context.all_gather(texts, axis=0),
                offset,
            )
        elif self.loss_name == "contrastive":
            global_loss = self.contrastive(images, texts)
        else:
            global_loss = hard_negative_triplet_loss(images, texts, margin=self.margin)
        total = global_loss
        if self.matching_loss_weight > 0:
            matching = self.matching_loss(y_pred, training=training)
            self.matching_loss_tracker.update_state(matching)
            total = total + self.matching_loss_weight * matching
        self.global_loss_tracker.update_state(global_loss)
        return total / replicas

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_shape": self.image_shape,
                "weights": None,  # the weights travel with the saved model
                "feature_layer": self.feature_layer,
                "embedding_dim": self.embedding_dim,
                "vocabulary_size": self.vocabulary_size,
                "vocabulary": self.get_vocabulary(),
                "sequence_length": self.sequence_length,
                "word_embedding_dim": self.word_embedding_dim,
                "text_hidden_dim": self.text_hidden_dim,
                "bidirectional": self.bidirectional,
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "matching_layers": self.matching_layers,
                "negative_temperature": self.negative_temperature,
                "dropout_rate": self.dropout_rate,
                "loss": self.loss_name,
                "margin": self.margin,
                "matching_loss_weight": self.matching_loss_weight,
                **self.towers,
            }
        )
        return config


def build_model(config, vocabulary=None):
    """An `ImageTextRetrievalModel` from a `RetrievalConfig`, built."""
    image_size = config.data.image_size
    model = ImageTextRetrievalModel(
        **arguments_for(
            ImageTextRetrievalModel,
            config.model,
            config.training,
            image_shape=(image_size, image_size, 3),
            vocabulary=vocabulary,
        )
    )
    model.build()
    return model


VOCABULARY_FILE = "vocabulary.txt"


def load_vocabulary(run):
    """The vocabulary a run (a `RunDirectory`) saved, one token a line."""
    path = run.file(VOCABULARY_FILE)
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def load_trained_model(run_dir):
    """`(config, model)` of a run, with its vocabulary and best weights.

    The model computes in float32 whatever precision it was trained with, so
    evaluation and exports are exact and portable.
    """
    from common.training.config import load_config
    from common.training.run_directory import RunDirectory
    from retrieval.config import RetrievalConfig

    run = RunDirectory(run_dir)
    config = load_config(RetrievalConfig, run.config)
    keras.config.set_dtype_policy("float32")
    model = build_model(config, vocabulary=load_vocabulary(run))
    model.load_weights(run.trained_weights())
    return config, model
