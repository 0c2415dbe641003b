"""Input checks for exported signatures: a bad request fails with an
`InvalidArgumentError` whose message names the input, before any work.

A loaded SavedModel checks only dtypes (and names an input by position); it
does not check ranks or static dimensions. These run first in each signature
(as control dependencies, so nothing else can fail before them).
"""

import tensorflow as tf

# Magic numbers of the image formats the signatures decode.
_SIGNATURES = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),  # PNG
    (0, b"GIF8"),  # GIF
    (0, b"BM"),  # BMP
)


def checked(tensor, checks):
    """`tensor`, computed only after `checks` (a list of assert ops) pass."""
    with tf.control_dependencies([c for c in checks if c is not None]):
        return tf.identity(tensor)


def batch_checks(tensor, name, rank, inner_shape=None):
    """Asserts: rank `rank`, a batch of at least one, and `inner_shape` (the
    dimensions after the batch; `None` entries are free)."""
    checks = [
        tf.debugging.assert_rank(
            tensor, rank, message=f"`{name}` must have rank {rank} (batch first)"
        ),
    ]
    shape = tf.shape(tensor)
    checks.append(
        tf.debugging.assert_positive(
            shape[0], message=f"`{name}` is an empty batch: send at least one item"
        )
    )
    if inner_shape is not None:
        for axis, size in enumerate(inner_shape, start=1):
            if size is None:
                continue
            checks.append(
                tf.debugging.assert_equal(
                    shape[axis],
                    size,
                    message=f"`{name}` must have shape [batch, "
                    + ", ".join("?" if s is None else str(s) for s in inner_shape)
                    + f"]; dimension {axis} differs",
                )
            )
    return checks


def same_batch_checks(tensors):
    """Asserts that the named tensors (`{name: tensor}`) share the batch size."""
    items = list(tensors.items())
    first_name, first = items[0]
    return [
        tf.debugging.assert_equal(
            tf.shape(t)[0],
            tf.shape(first)[0],
            message=f"`{name}` and `{first_name}` must have the same batch size",
        )
        for name, t in items[1:]
    ]


def finite_checks(tensor, name):
    return [
        tf.debugging.assert_all_finite(tensor, message=f"`{name}` holds NaN or Inf")
    ]


def _pixels_from_header(image_bytes):
    """Width x height from the header of a JPEG, PNG, GIF or BMP, else 0."""

    def bytes_at(offset, count):
        raw = tf.io.decode_raw(
            tf.strings.substr(image_bytes + b"\0" * 32, offset, count), tf.uint8
        )
        return tf.cast(raw, tf.int64)

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return shape[0] * shape[1]

    def png():
        b = bytes_at(16, 8)
        width = b[0] * 2**24 + b[1] * 2**16 + b[2] * 2**8 + b[3]
        height = b[4] * 2**24 + b[5] * 2**16 + b[6] * 2**8 + b[7]
        return width * height

    def gif():
        b = bytes_at(6, 4)
        return (b[0] + b[1] * 256) * (b[2] + b[3] * 256)

    def bmp():
        b = bytes_at(18, 8)
        width = b[0] + b[1] * 2**8 + b[2] * 2**16 + b[3] * 2**24
        height = b[4] + b[5] * 2**8 + b[6] * 2**16 + b[7] * 2**24
        height = tf.where(height >= 2**31, 2**32 - height, height)  # top-down
        return width * height

    kinds = [tf.strings.substr(image_bytes, o, len(m)) == m for o, m in _SIGNATURES]
    return tf.case(
        [(kinds[0], jpeg), (kinds[1], png), (kinds[2], gif), (kinds[3], bmp)],
        default=lambda: tf.constant(0, tf.int64),
        exclusive=False,
    )


def image_bytes_checks(image_bytes, max_pixels, name="image_bytes"):
    """Per element: a JPEG/PNG/GIF/BMP whose header declares at most
    `max_pixels` pixels (checked before decoding: no decompression bomb)."""
    checks = batch_checks(image_bytes, name, 1)
    known = tf.zeros(tf.shape(image_bytes), tf.bool)
    for offset, magic in _SIGNATURES:
        known = known | (tf.strings.substr(image_bytes, offset, len(magic)) == magic)
    checks.append(
        tf.debugging.Assert(
            tf.reduce_all(known),
            [
                f"`{name}`: an element is not a JPEG, PNG, GIF or BMP image "
                "(empty or other bytes); at index",
                tf.where(~known)[:1],
            ],
            name=f"{name}_format",
        )
    )
    with tf.control_dependencies(checks):
        pixels = tf.map_fn(
            _pixels_from_header,
            image_bytes,
            fn_output_signature=tf.TensorSpec((), tf.int64),
        )
    checks.append(
        tf.debugging.assert_less_equal(
            pixels,
            tf.constant(max_pixels, tf.int64),
            message=f"`{name}`: an image is larger than the {max_pixels}-pixel limit",
        )
    )
    return checks
