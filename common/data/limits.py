"""Limits on what the suite reads, defined once (no TensorFlow import)."""

# Pixels an image may declare in its header before it is refused without
# being decoded (a 60000x60000 PNG header would otherwise allocate 10 GiB):
# training data (`data.max_image_pixels`, `prepare --max-image-pixels`) and
# the images sent to the exported SavedModels.
MAX_IMAGE_PIXELS = 50_000_000
