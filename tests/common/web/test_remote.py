"""The web page in front of TF Serving: a stand-in server speaking TF
Serving's REST API (`:predict`, `/metadata`) over the same exported
SavedModels, so the page's answers through it must equal the local ones."""

import collections
import contextlib
import http.server
import json
import os
import re
import threading
import urllib.parse

import numpy as np
import tensorflow as tf

from common.serving.rest import from_json_value, to_json_value
from common.web import make_app
from common.web.backends import (
    RemoteClassifyBackend,
    RemoteSearchBackend,
    _decoding_from_shapes,
)
from tests.common.serving.helpers import JsonHandler
from tests.common.web.helpers import (
    ExportedBackendsTest,
    get_json,
    post_json,
    request,
    serving,
)

# requests the stand-in answered, by kind ("metadata", "predict")
CALLS = collections.Counter()


@contextlib.contextmanager
def fake_serving(models):
    """`http://127.0.0.1:PORT` of a REST server answering for `models`
    (name -> SavedModel version folder) as TF Serving does."""
    loaded = {name: tf.saved_model.load(path) for name, path in models.items()}

    class Handler(JsonHandler):
        reply = JsonHandler.send_json

        def do_GET(self):
            CALLS["metadata"] += 1
            match = re.fullmatch(r"/v1/models/([\w-]+)/metadata", self.path)
            if not match or match.group(1) not in loaded:
                return self.reply(404, {"error": "no such model"})
            signatures = {}
            for name, function in loaded[match.group(1)].signatures.items():
                specs = function.structured_input_signature[1]
                signatures[name] = {"inputs": {
                    key: {"tensor_shape": {"dim": [
                        {"size": str(-1 if d is None else d)} for d in spec.shape
                    ]}}
                    for key, spec in specs.items()
                }}  # fmt: skip
            return self.reply(200, {
                "model_spec": {"name": match.group(1), "version": "1"},
                "metadata": {"signature_def": {"signature_def": signatures}},
            })  # fmt: skip

        def do_POST(self):
            CALLS["predict"] += 1
            match = re.fullmatch(r"/v1/models/([\w-]+):predict", self.path)
            if not match or match.group(1) not in loaded:
                return self.reply(404, {"error": "no such model"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            function = loaded[match.group(1)].signatures[body["signature_name"]]
            specs = function.structured_input_signature[1]
            inputs = {
                key: tf.constant(from_json_value(value), dtype=specs[key].dtype)
                for key, value in body["inputs"].items()
            }
            try:
                out = function(**inputs)
            except tf.errors.InvalidArgumentError as error:
                return self.reply(400, {"error": error.message})
            return self.reply(200, {"outputs": {
                key: to_json_value(value.numpy()) for key, value in out.items()
            }})  # fmt: skip

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class RemoteBackendsTest(ExportedBackendsTest):
    def models(self):
        return {
            "retrieval_index": os.path.join(self.e.index, "1"),
            "video_understanding": os.path.join(self.e.video, "1"),
        }

    def test_search_through_serving_answers_as_the_local_index(self):
        query = "a large red circle at the top left"
        with fake_serving(self.models()) as url:
            remote = RemoteSearchBackend(url, ["retrieval_index"], self.e.images)
            self.assertEqual(remote.info()["version"], "1")
            for depth in (None, 2):
                got = remote.search(query, k=5, rerank_depth=depth)
                want = self.search.search(query, k=5, rerank_depth=depth)
                self.assertEqual([r["id"] for r in got], [r["id"] for r in want])
                np.testing.assert_allclose(
                    [r["score"] for r in got], [r["score"] for r in want], atol=1e-5
                )
            image = os.path.join(self.e.images, self.search.index.ids[4])
            with open(image, "rb") as f:
                data = f.read()
            by_image = remote.search(image_bytes=data, k=3)
            self.assertEqual(
                [r["id"] for r in by_image],
                [r["id"] for r in self.search.search(image_bytes=data, k=3)],
            )
            # the answering version is not asked for at every query
            CALLS.clear()
            for _ in range(5):
                remote.search(query, k=2)
                remote.info()
            self.assertEqual(CALLS, {"predict": 5})
            # through the page: thumbnails come from the local gallery folder
            with serving(make_app(remote)) as base:
                path = "/api/search?" + urllib.parse.urlencode({"q": query, "k": 3})
                status, answer = get_json(base, path)
                self.assertEqual(status, 200, answer)
                first = answer["results"][0]
                status, _, body = request(base, "GET", first["image"])
                self.assertEqual(status, 200)
                with open(os.path.join(self.e.images, first["id"]), "rb") as f:
                    self.assertEqual(body, f.read())

    def test_classify_through_serving_answers_as_predict(self):
        from video_understanding.predict import predict

        with open(
            os.path.join(self.e.video, "1", "assets.extra", "decoding.json")
        ) as f:
            decoding = json.load(f)
        clip = self.clips[0]
        with open(clip, "rb") as f:
            data = f.read()
        with fake_serving(self.models()) as url:
            remote = RemoteClassifyBackend(url, "video_understanding", decoding)
            answer = remote.classify(data, "clip.mp4", k=3)
            shapes_only = RemoteClassifyBackend(url, "video_understanding")
        expected = predict([clip], self.e.video, k=3)[0]["top"]
        self.assertEqual([t["label"] for t in answer["top"]],
                         [t["label"] for t in expected])  # fmt: skip
        np.testing.assert_allclose(
            [t["score"] for t in answer["top"]],
            [t["score"] for t in expected],
            atol=1e-5,
        )
        # the served shapes give the frames; the export takes sound of any
        # length, so without decoding.json the whole clip is decoded
        for key in ("num_frames", "frame_size", "sample_rate"):
            self.assertEqual(shapes_only.decoding[key], decoding[key], key)
        self.assertIsNone(shapes_only.decoding["clip_seconds"])

    def test_serving_refusals_and_outages_are_messages(self):
        with fake_serving(self.models()) as url:
            remote = RemoteSearchBackend(url, ["retrieval_index"], self.e.images)
            with serving(make_app(remote)) as base:
                status, answer = post_json(base, "/api/search-image?k=2", b"no image")
                self.assertEqual(status, 400, answer)
                self.assertIn("HTTP 400", answer["error"])
        # the stand-in has stopped: the page says TF Serving is unreachable
        remote.clients[0].retries = 0
        with serving(make_app(remote)) as base:
            status, answer = get_json(base, "/api/search?q=a+dog&k=2")
        self.assertEqual(status, 502, answer)
        self.assertIn("unreachable", answer["error"])
        self.assertNotIn("Traceback", answer["error"])

    def test_decoding_from_served_input_shapes(self):
        shapes = {"frames": [-1, 8, 112, 112, 3], "audio": [-1, 32000]}
        self.assertEqual(
            _decoding_from_shapes(shapes),
            {"num_frames": 8, "frame_size": 112, "sample_rate": 16000,
             "clip_seconds": 2.0},
        )  # fmt: skip
        whole = _decoding_from_shapes({"frames": [-1, 4, 64, 64, 3], "audio": [-1, -1]})
        self.assertIsNone(whole["clip_seconds"])
        with self.assertRaisesRegex(ValueError, "decoding.json"):
            _decoding_from_shapes({"frames": [-1, -1, -1, -1, 3]})
