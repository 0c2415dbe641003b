"""TF Serving's configuration messages that `tensorflow-serving-api` lacks.

The pip package ships `tensorflow_serving.apis` and `tensorflow_serving.config`
(`ModelServerConfig`, used as is), but not `BatchingParameters`
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto, the
`--batching_parameters_file` format) nor `MonitoringConfig`
(tensorflow_serving/config/monitoring_config.proto, `--monitoring_config_file`).
They are declared here with the field names, numbers and types of those
protos, so `parse_batching_config` and `parse_monitoring_config` check the
files with protobuf's own text-format parser: an unknown field, a misspelt
name or a wrong type fails exactly as it would in the model server.
"""

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    wrappers_pb2,
)

_F = descriptor_pb2.FieldDescriptorProto
_INT64 = ".google.protobuf.Int64Value"
_STRING = ".google.protobuf.StringValue"

# (name, number, type, label, message type) per field.
_MESSAGES = {
    "BatchingParameters": [
        ("max_batch_size", 1, _F.TYPE_MESSAGE, None, _INT64),
        ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, None, _INT64),
        ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, None, _INT64),
        ("num_batch_threads", 4, _F.TYPE_MESSAGE, None, _INT64),
        ("thread_pool_name", 5, _F.TYPE_MESSAGE, None, _STRING),
        ("allowed_batch_sizes", 6, _F.TYPE_INT64, _F.LABEL_REPEATED, None),
        ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, None, None),
    ],
    "PrometheusConfig": [
        ("enable", 1, _F.TYPE_BOOL, None, None),
        ("path", 2, _F.TYPE_STRING, None, None),
    ],
    "MonitoringConfig": [
        (
            "prometheus_config",
            1,
            _F.TYPE_MESSAGE,
            None,
            ".tensorflow.serving.PrometheusConfig",
        ),
    ],
}  # fmt: skip


def _build():
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto.FromString(
        wrappers_pb2.DESCRIPTOR.serialized_pb
    )
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="multimodal_suite/tf_serving_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=[wrappers.name],
    )
    for message_name, fields in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for name, number, kind, label, type_name in fields:
            field = message.field.add(
                name=name,
                number=number,
                type=kind,
                label=label or _F.LABEL_OPTIONAL,
            )
            if type_name:
                field.type_name = type_name
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        )
        for name in _MESSAGES
    }


_CLASSES = _build()
BatchingParameters = _CLASSES["BatchingParameters"]
MonitoringConfig = _CLASSES["MonitoringConfig"]


def _parse(path, message):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ValueError(
            f"{path}: not a valid {message.DESCRIPTOR.name}: {error}"
        ) from None


def parse_model_config(path):
    """`saved_models/models.config` -> `ModelServerConfig` (TF Serving's proto)."""
    from tensorflow_serving.config import model_server_config_pb2

    return _parse(path, model_server_config_pb2.ModelServerConfig())


def parse_batching_config(path):
    """`saved_models/batching.config` -> `BatchingParameters`."""
    return _parse(path, BatchingParameters())


def parse_monitoring_config(path):
    """`saved_models/monitoring.config` -> `MonitoringConfig`."""
    return _parse(path, MonitoringConfig())
