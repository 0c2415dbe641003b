"""Image decoding shared by training pipelines and exported signatures."""

import tensorflow as tf


def decode_and_resize(image_bytes, image_size):
    """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 `[H, W, 3]` at `image_size`.

    Grayscale and RGBA images become RGB; the resize is bilinear on the whole
    image (no crop), so training, evaluation and serving see the same pixels.
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
