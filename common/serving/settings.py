"""The deployment's fixed facts, shared by the exports, configs and clients.

`saved_models/batching.config` must state the same batch sizes (a test reads
it); every export writes warmup requests at each of them.
"""

# Server-side batching (saved_models/batching.config): the batch sizes TF
# Serving pads a batch up to; the last is max_batch_size.
ALLOWED_BATCH_SIZES = (1, 8, 32)
MAX_BATCH_SIZE = ALLOWED_BATCH_SIZES[-1]

# The TF Serving image the deployment runs; its version must equal the
# TensorFlow that trains and exports (tests/common/serving check both).
SERVING_IMAGE = "tensorflow/serving"
SERVING_VERSION = "2.21.0"

# Model names in saved_models/models.config, also the folder names.
MODEL_NAMES = ("retrieval", "retrieval_index", "video_understanding")

REST_PORT = 8501
GRPC_PORT = 8500

WARMUP_FILE = "tf_serving_warmup_requests"
