"""A client for TF Serving's gRPC `PredictionService` (port 8500)."""

import numpy as np

from common.serving.rest import ServingError, call_with_retries
from common.serving.warmup import predict_request

RETRY_CODES = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED")


def outputs_of(response):
    """`PredictResponse` -> `{name: np.ndarray}`."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


class GrpcClient:
    """`predict` calls to one model over gRPC.

    Args:
        target: `host:port`, e.g. `localhost:8500`.
        model: model name in models.config.
        version / label: pin a version or a version label.
        timeout: seconds per attempt.
        retries: extra attempts on UNAVAILABLE / DEADLINE_EXCEEDED /
            RESOURCE_EXHAUSTED, with exponential backoff from `backoff` s.
        max_message_mb: gRPC message limit (video batches are large).
    """

    def __init__(
        self, target, model, version=None, label=None, timeout=30.0, retries=3,
        backoff=0.5, max_message_mb=256,
    ):  # fmt: skip
        self.target = target
        self.model = model
        self.version = version
        self.label = label
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_message_bytes = int(max_message_mb * 1024 * 1024)
        self._stub = None

    def request(self, inputs, signature_name="serving_default"):
        """The `PredictRequest` this client would send."""
        return predict_request(
            self.model, signature_name, inputs, version=self.version, label=self.label
        )

    def _get_stub(self):
        if self._stub is None:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            options = [
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ]
            channel = grpc.insecure_channel(self.target, options=options)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return self._stub

    def predict(self, inputs, signature_name="serving_default"):
        """`inputs` (name -> batch) -> outputs (name -> np.ndarray)."""
        import grpc

        request = self.request(
            {k: np.asarray(v) for k, v in inputs.items()}, signature_name
        )
        stub = self._get_stub()

        def failure(error):
            if not isinstance(error, grpc.RpcError):
                return None
            code = error.code().name if error.code() else "UNKNOWN"
            return code in RETRY_CODES, ServingError(
                f"{self.target} {self.model}/{signature_name}: {code}: "
                f"{error.details()}"
            )

        return call_with_retries(
            lambda: outputs_of(stub.Predict(request, timeout=self.timeout)),
            self.retries,
            self.backoff,
            failure,
        )
