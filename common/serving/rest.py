"""A client for TF Serving's REST API (`/v1/models/NAME...:predict`).

Request bodies follow TF Serving's documented JSON: the columnar `inputs`
format (`{"signature_name": S, "inputs": {name: value}}`) or the row
`instances` format (`{"signature_name": S, "instances": [{name: value}, ...]}`);
binary strings (image bytes) travel as `{"b64": "..."}`. Responses carry
`outputs` or `predictions`; errors carry `{"error": message}`.
"""

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

RETRY_STATUSES = (502, 503, 504)
# Errors of a server that cannot be reached (yet): retried like 502-504.
UNREACHABLE = (urllib.error.URLError, ConnectionError, TimeoutError)


class ServingError(RuntimeError):
    """The server refused a request (4xx) or stayed unavailable after retries."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def call_with_retries(call, retries, backoff, failure):
    """`call()`, tried up to `retries` more times, `backoff * 2**attempt`
    seconds apart, while its error is transient.

    `failure(error)` judges an exception: `None` lets it propagate as it is,
    else `(transient, ServingError)`: a transient error is retried, and the
    `ServingError` is raised when it is not or the retries are spent.
    """
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as error:
            verdict = failure(error)
            if verdict is None:
                raise
            transient, serving_error = verdict
            if not (transient and attempt < retries):
                raise serving_error from None
        time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def to_json_value(value):
    """A Python/NumPy value -> JSON-ready, bytes as `{"b64": ...}`."""
    if isinstance(value, bytes | bytearray):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SO":
            return [to_json_value(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


def from_json_value(value):
    """Undoes `to_json_value` for a response: `{"b64": ...}` -> bytes."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [from_json_value(v) for v in value]
    return value


def predict_body(inputs, signature_name=None, row_format=False):
    """The JSON body of a predict request for `inputs` (name -> batch)."""
    body = {}
    if signature_name:
        body["signature_name"] = signature_name
    if row_format:
        names = list(inputs)
        sizes = {len(inputs[n]) for n in names}
        if len(sizes) != 1:
            raise ValueError(
                "The instances format needs every input to have the same batch "
                f"size; received { ({n: len(inputs[n]) for n in names}) }."
            )
        count = sizes.pop()
        if len(names) == 1:
            body["instances"] = [to_json_value(v) for v in inputs[names[0]]]
        else:
            body["instances"] = [
                {n: to_json_value(inputs[n][i]) for n in names} for i in range(count)
            ]
    else:
        body["inputs"] = {n: to_json_value(v) for n, v in inputs.items()}
    return body


def model_path(model, version=None, label=None):
    """`/v1/models/NAME[/versions/V | /labels/L]`."""
    if version is not None and label is not None:
        raise ValueError("Give a model version or a version label, not both.")
    path = f"/v1/models/{urllib.parse.quote(model)}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{urllib.parse.quote(label)}"
    return path


class RestClient:
    """Predict and metadata calls to one model on a TF Serving REST endpoint.

    Args:
        server: base URL, e.g. `http://localhost:8501`.
        model: model name in models.config.
        version / label: pin a version or a version label (e.g. `stable`).
        timeout: seconds per attempt.
        retries: extra attempts on 502/503/504 or a refused connection, with
            exponential backoff from `backoff` seconds.
    """

    def __init__(
        self, server, model, version=None, label=None, timeout=30.0, retries=3,
        backoff=0.5,
    ):  # fmt: skip
        if not server.startswith(("http://", "https://")):
            server = "http://" + server
        self.server = server.rstrip("/")
        self.model = model
        self.path = model_path(model, version, label)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _call(self, url, body=None):
        data = None if body is None else json.dumps(body).encode("utf-8")

        def attempt():
            request = urllib.request.Request(
                url,
                data=data,
                method="GET" if data is None else "POST",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return json.loads(reply.read().decode("utf-8"))

        def failure(error):
            if isinstance(error, urllib.error.HTTPError):
                message = f"{url}: HTTP {error.code}: {_error_message(error)}"
                return error.code in RETRY_STATUSES, ServingError(
                    message, status=error.code
                )
            if isinstance(error, UNREACHABLE):
                return True, ServingError(
                    f"{url}: unreachable after {self.retries + 1} attempts "
                    f"({getattr(error, 'reason', error)})."
                )
            return None

        return call_with_retries(attempt, self.retries, self.backoff, failure)

    def predict(self, inputs, signature_name=None, row_format=False):
        """`inputs` (name -> batch of values) -> outputs (name -> np.ndarray)."""
        body = predict_body(inputs, signature_name, row_format)
        reply = self._call(f"{self.server}{self.path}:predict", body)
        if "outputs" in reply:
            outputs = reply["outputs"]
            if not isinstance(outputs, dict):
                outputs = {"output": outputs}
        elif "predictions" in reply:
            rows = reply["predictions"]
            if rows and isinstance(rows[0], dict):
                outputs = {k: [row[k] for row in rows] for k in rows[0]}
            else:
                outputs = {"output": rows}
        else:
            raise ServingError(f"Unexpected response from {self.server}: {reply}")
        return {k: np.asarray(from_json_value(v)) for k, v in outputs.items()}

    def metadata(self):
        """The model's signatures (`GET .../metadata`)."""
        return self._call(f"{self.server}{self.path}/metadata")

    def input_shapes(self, signature_name="serving_default"):
        """`{input name: [dims]}` from the metadata (-1 for unknown)."""
        signature = self.metadata()["metadata"]["signature_def"]["signature_def"][
            signature_name
        ]
        return {
            name: [int(d["size"]) for d in spec["tensor_shape"].get("dim", [])]
            for name, spec in signature["inputs"].items()
        }


def _error_message(error):
    try:
        payload = json.loads(error.read().decode("utf-8"))
        return payload.get("error", payload)
    except (ValueError, OSError):
        return error.reason
