"""Input checks for exported signatures: a bad request fails with an
`InvalidArgumentError` whose message names the input, before any work.

A loaded SavedModel checks only dtypes (and names an input by position); it
does not check ranks or static dimensions. Each `ensure_*` returns its input
with the checks on the data path, so a signature that computes from the
returned tensors cannot fail elsewhere first.
"""

import tensorflow as tf

# Magic numbers of the image formats the signatures decode.
_SIGNATURES = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),  # PNG
    (0, b"GIF8"),  # GIF
    (0, b"BM"),  # BMP
)


def _after(tensor, checks):
    """`tensor`, computed only after the assert ops `checks` ran."""
    with tf.control_dependencies(checks):
        return tf.identity(tensor)


def ensure_batch(tensor, name, rank, inner_shape=None):
    """`tensor`, checked: rank `rank` and `inner_shape` (the dimensions after
    the batch; `None` entries are free), then a batch of at least one item.

    Use the returned tensor: the checks are on its data path. (A check that
    only a control dependency points at can be pruned by Grappler, and an
    assert on `tf.rank` is folded away because the signature declares the
    rank, which a loaded signature does not enforce.) The shape check is
    `tf.ensure_shape`; its message names the input: "Shape of tensor NAME
    [...] is not compatible with expected shape [...]".
    """
    inner = list(inner_shape) if inner_shape is not None else [None] * (rank - 1)
    if len(inner) + 1 != rank:
        raise ValueError(f"inner_shape {inner_shape} does not fit rank {rank}")
    shaped = tf.ensure_shape(tensor, [None] + inner, name=f"{name}_shape")
    nonempty = tf.debugging.assert_positive(
        tf.shape(shaped)[0],
        message=f"`{name}` is an empty batch: send at least one item",
    )
    return _after(shaped, [nonempty])


def ensure_same_batch(tensors):
    """The named tensors (`{name: tensor}`, already through `ensure_batch`),
    checked to share their batch size; returned in the same order."""
    items = list(tensors.items())
    first_name, first = items[0]
    checks = [
        tf.debugging.assert_equal(
            tf.shape(t)[0],
            tf.shape(first)[0],
            message=f"`{name}` and `{first_name}` must have the same batch size",
        )
        for name, t in items[1:]
    ]
    return [_after(t, checks) for _, t in items]


def ensure_finite(tensor, name):
    return tf.debugging.check_numerics(tensor, message=f"`{name}` holds NaN or Inf")


def ensure_at_least(tensor, name, axis, minimum, what):
    check = tf.debugging.assert_greater_equal(
        tf.shape(tensor)[axis],
        minimum,
        message=f"`{name}` must hold at least {minimum} {what}",
    )
    return _after(tensor, [check])


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


def ensure_image_bytes(image_bytes, max_pixels, name="image_bytes"):
    """`image_bytes`, checked per element: a JPEG/PNG/GIF/BMP whose header
    declares at most `max_pixels` pixels (before decoding: no decompression
    bomb)."""
    image_bytes = ensure_batch(image_bytes, name, 1)
    known = tf.zeros(tf.shape(image_bytes), tf.bool)
    for offset, magic in _SIGNATURES:
        known = known | (tf.strings.substr(image_bytes, offset, len(magic)) == magic)
    format_check = tf.debugging.Assert(
        tf.reduce_all(known),
        [
            f"`{name}`: an element is not a JPEG, PNG, GIF or BMP image "
            "(empty or other bytes); at index",
            tf.where(~known)[:1],
        ],
        name=f"{name}_format",
    )
    image_bytes = _after(image_bytes, [format_check])
    pixels = tf.map_fn(
        _pixels_from_header,
        image_bytes,
        fn_output_signature=tf.TensorSpec((), tf.int64),
    )
    size_check = tf.debugging.assert_less_equal(
        pixels,
        tf.constant(max_pixels, tf.int64),
        message=f"`{name}`: an image is larger than the {max_pixels}-pixel limit",
    )
    return _after(image_bytes, [size_check])
