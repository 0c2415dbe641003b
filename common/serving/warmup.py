"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays this TFRecord of `PredictionLog` protos when it loads a
version, before the version receives traffic, so the first real request does
not pay for graph optimisation and memory allocation. Exports write one request
per signature and batch size in `ALLOWED_BATCH_SIZES`.
"""

import os

import numpy as np

from common.serving.settings import ALLOWED_BATCH_SIZES, WARMUP_FILE


def predict_request(model_name, signature_name, inputs, version=None, label=None):
    """A `PredictRequest` for `inputs` (a dict of array-likes)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None and label is not None:
        raise ValueError("Give a model version or a version label, not both.")
    if version is not None:
        request.model_spec.version.value = int(version)
    if label is not None:
        request.model_spec.version_label = label
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    return request


def write_warmup_requests(export_dir, model_name, make_inputs, batch_sizes=None):
    """Writes `export_dir/assets.extra/tf_serving_warmup_requests`.

    Args:
        export_dir: the SavedModel folder (before it is published).
        model_name: the name TF Serving serves it under.
        make_inputs: dict `signature name -> f(batch_size) -> {input: array}`.
        batch_sizes: defaults to `ALLOWED_BATCH_SIZES`.

    Returns:
        The file's path.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    batch_sizes = batch_sizes or ALLOWED_BATCH_SIZES
    specs = signature_inputs(export_dir)
    missing = set(specs) - set(make_inputs)
    if missing:
        raise ValueError(f"No warmup inputs for signatures {sorted(missing)}.")
    extra = os.path.join(export_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    path = os.path.join(extra, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, make in make_inputs.items():
            for batch in batch_sizes:
                inputs = make(batch)
                if set(inputs) != set(specs[signature]):
                    raise ValueError(
                        f"Warmup inputs {sorted(inputs)} for {signature!r} do not "
                        f"match its inputs {sorted(specs[signature])}."
                    )
                # A request whose dtype differs from the signature's (int64 for
                # int32, say) would fail the warmup and the model's loading.
                inputs = {
                    name: np.asarray(value, dtype=specs[signature][name])
                    for name, value in inputs.items()
                }
                request = predict_request(model_name, signature, inputs)
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                )
                writer.write(log.SerializeToString())
    return path


def signature_inputs(export_dir):
    """`{signature: {input name: numpy dtype}}` read from `saved_model.pb`."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(export_dir, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    graph = saved_model.meta_graphs[0]
    return {
        name: {
            key: tf.dtypes.as_dtype(info.dtype).as_numpy_dtype
            for key, info in signature.inputs.items()
        }
        for name, signature in graph.signature_def.items()
        if name != "__saved_model_init_op"
    }


def read_warmup_requests(export_dir):
    """`[(signature name, {input: np.ndarray})]` from a version's warmup file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(export_dir, "assets.extra", WARMUP_FILE)
    requests = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests


def sample_jpeg(size=64):
    """A valid small JPEG (a colour gradient) for image-bytes warmup inputs."""
    import io

    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    pixels = np.stack([x * 4, y * 4, (x + y) * 2], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()
