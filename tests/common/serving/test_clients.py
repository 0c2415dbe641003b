"""The clients speak TF Serving's REST JSON and gRPC protos.

A local HTTP server records what the REST client sends and answers the way TF
Serving does (including errors); an in-process gRPC server implements
`PredictionService` with TF Serving's generated stubs.
"""

import base64
import contextlib
import http.server
import io
import json
import threading
from concurrent import futures

import numpy as np

from common.serving import GrpcClient, RestClient, ServingError
from common.serving.__main__ import main as serving_main
from common.serving.rest import predict_body
from common.testing import TestCase
from tests.common.serving.helpers import JsonHandler


class FakeServing(JsonHandler):
    """Records requests; replies from the class-level `replies` queue."""

    requests = []
    replies = []

    def _reply(self):
        self.send_json(*(self.replies.pop(0) if self.replies else (200, {})))

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        self.requests.append(("POST", self.path, body))
        self._reply()

    def do_GET(self):
        self.requests.append(("GET", self.path, None))
        self._reply()


class RestClientTest(TestCase):
    def setUp(self):
        super().setUp()
        FakeServing.requests, FakeServing.replies = [], []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeServing)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()
        super().tearDown()

    def test_columnar_request_with_b64_bytes_and_version(self):
        FakeServing.replies = [(200, {"outputs": [[0.6, 0.8]]})]
        client = RestClient(self.url, "retrieval", version=3)
        jpeg = b"\xff\xd8\xff\xe0binary"
        out = client.predict({"image_bytes": [jpeg]}, signature_name="embed_image")
        method, path, body = FakeServing.requests[0]
        self.assertEqual(
            (method, path), ("POST", "/v1/models/retrieval/versions/3:predict")
        )
        self.assertEqual(
            body,
            {
                "signature_name": "embed_image",
                "inputs": {"image_bytes": [{"b64": base64.b64encode(jpeg).decode()}]},
            },
        )
        np.testing.assert_allclose(out["output"], [[0.6, 0.8]])

    def test_row_format_with_label_and_named_outputs(self):
        FakeServing.replies = [
            (200, {"predictions": [{"ids": ["a.jpg", "b.jpg"], "scores": [0.9, 0.5]}]})
        ]
        client = RestClient(self.url, "retrieval_index", label="stable")
        out = client.predict(
            {"text": ["a dog"], "k": [2]},
            signature_name="search_by_text",
            row_format=True,
        )
        _, path, body = FakeServing.requests[0]
        self.assertEqual(path, "/v1/models/retrieval_index/labels/stable:predict")
        self.assertEqual(
            body,
            {
                "signature_name": "search_by_text",
                "instances": [{"text": "a dog", "k": 2}],
            },
        )
        self.assertEqual(out["ids"].tolist(), [["a.jpg", "b.jpg"]])
        np.testing.assert_allclose(out["scores"], [[0.9, 0.5]])

    def test_numpy_inputs_become_nested_lists(self):
        body = predict_body(
            {
                "frames": np.zeros((1, 2, 2, 2, 3), np.uint8),
                "audio": np.ones((1, 3), np.float32),
            }
        )
        self.assertEqual(body["inputs"]["frames"], np.zeros((1, 2, 2, 2, 3)).tolist())
        self.assertEqual(body["inputs"]["audio"], [[1.0, 1.0, 1.0]])
        self.assertNotIn("signature_name", body)
        with self.assertRaisesRegex(ValueError, "same batch size"):
            predict_body({"a": [1, 2], "b": [1]}, row_format=True)

    def test_retries_on_503_then_succeeds(self):
        FakeServing.replies = [
            (503, {"error": "Servable not available"}),
            (503, {"error": "Servable not available"}),
            (200, {"outputs": [[1.0]]}),
        ]
        client = RestClient(self.url, "retrieval", retries=3, backoff=0.01)
        out = client.predict({"text": ["x"]})
        self.assertEqual(len(FakeServing.requests), 3)
        np.testing.assert_allclose(out["output"], [[1.0]])

    def test_gives_up_after_the_retries(self):
        FakeServing.replies = [(503, {"error": "busy"})] * 3
        client = RestClient(self.url, "retrieval", retries=2, backoff=0.01)
        with self.assertRaisesRegex(ServingError, "HTTP 503: busy") as caught:
            client.predict({"text": ["x"]})
        self.assertEqual(caught.exception.status, 503)
        self.assertEqual(len(FakeServing.requests), 3)

    def test_4xx_is_not_retried_and_names_the_server_message(self):
        message = "input size does not match signature: 1!=2 for input k"
        FakeServing.replies = [(400, {"error": message})]
        client = RestClient(self.url, "retrieval_index", retries=3, backoff=0.01)
        with self.assertRaisesRegex(ServingError, "HTTP 400: input size") as caught:
            client.predict({"text": ["x"], "k": [1, 2]})
        self.assertEqual(caught.exception.status, 400)
        self.assertEqual(len(FakeServing.requests), 1)

    def test_unreachable_server(self):
        client = RestClient("http://127.0.0.1:9", "retrieval", retries=1, backoff=0.01)
        with self.assertRaisesRegex(ServingError, "unreachable after 2 attempts"):
            client.predict({"text": ["x"]})

    def test_metadata_input_shapes_and_search_cli(self):
        metadata = {
            "model_spec": {"name": "video_understanding", "version": "1"},
            "metadata": {
                "signature_def": {
                    "signature_def": {
                        "serving_default": {
                            "inputs": {
                                "frames": {
                                    "dtype": "DT_UINT8",
                                    "tensor_shape": {
                                        "dim": [
                                            {"size": "-1"},
                                            {"size": "8"},
                                            {"size": "32"},
                                            {"size": "32"},
                                            {"size": "3"},
                                        ]
                                    },
                                }
                            }
                        }
                    }
                }
            },
        }
        FakeServing.replies = [(200, metadata)]
        shapes = RestClient(self.url, "video_understanding").input_shapes()
        self.assertEqual(shapes, {"frames": [-1, 8, 32, 32, 3]})
        self.assertEqual(
            FakeServing.requests[0][:2],
            ("GET", "/v1/models/video_understanding/metadata"),
        )

        FakeServing.replies = [
            (200, {"outputs": {"ids": [["x.jpg", "y.jpg"]], "scores": [[0.7, 0.2]]}})
        ]
        code = serving_main(["search", "--server", self.url, "-k", "2", "a red circle"])
        self.assertEqual(code, 0)
        _, path, body = FakeServing.requests[-1]
        self.assertEqual(path, "/v1/models/retrieval_index:predict")
        self.assertEqual(body["inputs"], {"text": ["a red circle"], "k": [2]})
        # the shards of one gallery: one request per model, top-k merged
        FakeServing.replies = [
            (200, {"outputs": {"ids": [["a.jpg", "b.jpg"]], "scores": [[0.9, 0.1]]}}),
            (200, {"outputs": {"ids": [["c.jpg", "d.jpg"]], "scores": [[0.5, 0.4]]}}),
        ]
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = serving_main(
                ["search", "--server", self.url, "-k", "2", "--json", "x"]
                + ["--model", "gallery_0", "--model", "gallery_1"]
            )
        self.assertEqual(code, 0)
        self.assertEqual(
            [p for _, p, _ in FakeServing.requests[-2:]],
            ["/v1/models/gallery_0:predict", "/v1/models/gallery_1:predict"],
        )
        self.assertEqual(
            json.loads(out.getvalue()),
            [{"id": "a.jpg", "score": 0.9}, {"id": "c.jpg", "score": 0.5}],
        )
        FakeServing.replies = [(404, {"error": "Servable not found"})]
        self.assertEqual(serving_main(["embed-text", "--server", self.url, "x"]), 1)


class GrpcClientTest(TestCase):
    def test_predict_request_round_trip_and_a_live_call_with_retry(self):
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import (
            predict_pb2,
            prediction_service_pb2_grpc,
        )

        client = GrpcClient("unused:1", "video_understanding", label="stable")
        frames = np.arange(2 * 2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 2, 4, 4, 3)
        request = client.request({"frames": frames, "audio": np.zeros((2, 5), "f4")})
        parsed = predict_pb2.PredictRequest.FromString(request.SerializeToString())
        self.assertEqual(parsed, request)
        self.assertEqual(parsed.model_spec.name, "video_understanding")
        self.assertEqual(parsed.model_spec.version_label, "stable")
        self.assertEqual(parsed.model_spec.signature_name, "serving_default")
        np.testing.assert_array_equal(tf.make_ndarray(parsed.inputs["frames"]), frames)
        self.assertEqual(parsed.inputs["frames"].dtype, tf.uint8.as_datatype_enum)

        calls = []

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                calls.append(request)
                if len(calls) == 1:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "loading")
                text = tf.make_ndarray(request.inputs["text"])
                response = predict_pb2.PredictResponse()
                response.outputs["lengths"].CopyFrom(
                    tf.make_tensor_proto(np.array([len(t) for t in text], np.int32))
                )
                return response

        server = grpc.server(futures.ThreadPoolExecutor(2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            Servicer(), server
        )
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            client = GrpcClient(
                f"127.0.0.1:{port}", "retrieval", version=2, backoff=0.01
            )
            out = client.predict(
                {"text": [b"ab", b"abcd"]}, signature_name="embed_text"
            )
            np.testing.assert_array_equal(out["lengths"], [2, 4])
            self.assertEqual(len(calls), 2)
            self.assertEqual(calls[-1].model_spec.version.value, 2)
            self.assertEqual(calls[-1].model_spec.signature_name, "embed_text")
            client = GrpcClient(f"127.0.0.1:{port}", "retrieval", retries=0)
            calls.clear()
            with self.assertRaisesRegex(ServingError, "UNAVAILABLE: loading"):
                client.predict({"text": [b"a"]})
        finally:
            server.stop(0)


class CallWithRetriesTest(TestCase):
    def test_transient_errors_are_retried_with_doubling_waits(self):
        from unittest import mock

        from common.serving.rest import call_with_retries

        outcomes = [OSError("busy")] * 3 + ["answer"]

        def call():
            outcome = outcomes.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        judge = lambda error: (True, ServingError(f"gave up: {error}"))  # noqa: E731
        with mock.patch("common.serving.rest.time.sleep") as sleep:
            self.assertEqual(call_with_retries(call, 3, 0.5, judge), "answer")
        self.assertEqual([c.args[0] for c in sleep.call_args_list], [0.5, 1.0, 2.0])

    def test_spent_retries_lasting_and_unknown_errors(self):
        from unittest import mock

        from common.serving.rest import call_with_retries

        def busy():
            raise OSError("busy")

        with mock.patch("common.serving.rest.time.sleep") as sleep:
            transient = lambda e: (True, ServingError("unavailable"))  # noqa: E731
            with self.assertRaisesRegex(ServingError, "unavailable"):
                call_with_retries(busy, 2, 0.1, transient)
            self.assertEqual(sleep.call_count, 2)
            sleep.reset_mock()
            lasting = lambda e: (False, ServingError("refused"))  # noqa: E731
            with self.assertRaisesRegex(ServingError, "refused"):
                call_with_retries(busy, 5, 0.1, lasting)
            with self.assertRaisesRegex(OSError, "busy"):
                call_with_retries(busy, 5, 0.1, lambda e: None)
            self.assertEqual(sleep.call_count, 0)
