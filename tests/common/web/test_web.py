"""The web page's server over a tiny exported index and video model: the
answers equal the exports' own, images are served by number only, uploads
are bounded, refusals are messages."""

import os
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from common.web import make_app
from tests.common.web.helpers import (
    ExportedBackendsTest,
    get_json,
    post_json,
    request,
    serving,
)

QUERIES = (
    "a large red circle at the top left",
    "a small blue square at the bottom right",
    "a green triangle in the middle",
)


class WebPageTest(ExportedBackendsTest):
    def serve(self, max_upload_bytes=2**22):
        return serving(make_app(self.search, self.classify, max_upload_bytes))

    def test_text_search_answers_as_the_index_does_and_serves_its_images(self):
        from retrieval.search import search

        with self.serve() as base:
            status, page = request(base, "GET", "/")[0], request(base, "GET", "/")[2]
            self.assertEqual(status, 200)
            self.assertIn(b"<title>multimodal-suite</title>", page)
            status, info = get_json(base, "/api/info")
            self.assertEqual(status, 200)
            self.assertEqual(info["search"]["size"], self.search.index.size)
            self.assertEqual(info["search"]["version"], "1")
            self.assertEqual(info["classify"]["version"], "1")
            for query in QUERIES:
                path = "/api/search?" + urllib.parse.urlencode({"q": query, "k": 5})
                status, answer = get_json(base, path)
                self.assertEqual(status, 200, answer)
                expected, root = search(self.e.index, query, k=5)
                self.assertEqual([r["id"] for r in answer["results"]],
                                 [i for i, _ in expected])  # fmt: skip
                np.testing.assert_allclose(
                    [r["score"] for r in answer["results"]],
                    [s for _, s in expected],
                    atol=1e-5,
                )
                self.assertEqual(
                    [r["rank"] for r in answer["results"]], [1, 2, 3, 4, 5]
                )
                self.assertEqual(answer["version"], "1")
                for result in answer["results"][:2]:
                    status, headers, body = request(base, "GET", result["image"])
                    self.assertEqual(status, 200)
                    with open(os.path.join(root, result["id"]), "rb") as f:
                        self.assertEqual(body, f.read())

    def test_search_by_an_uploaded_image(self):
        from retrieval.search import search

        image = os.path.join(self.e.images, self.search.index.ids[3])
        with open(image, "rb") as f:
            data = f.read()
        with self.serve() as base:
            status, answer = post_json(base, "/api/search-image?k=4", data)
        self.assertEqual(status, 200, answer)
        expected, _ = search(self.e.index, image=image, k=4)
        self.assertEqual([r["id"] for r in answer["results"]], [i for i, _ in expected])
        self.assertEqual(answer["results"][0]["id"], self.search.index.ids[3])

    def test_classify_an_uploaded_clip_as_predict_does(self):
        from video_understanding.predict import predict

        clip = self.clips[0]
        with open(clip, "rb") as f:
            data = f.read()
        with self.serve() as base:
            status, answer = post_json(base, "/api/classify?k=3&name=clip.mp4", data)
        self.assertEqual(status, 200, answer)
        expected = predict([clip], self.e.video, k=3)[0]["top"]
        got = answer["answer"]["top"]
        self.assertEqual([t["label"] for t in got], [t["label"] for t in expected])
        np.testing.assert_allclose(
            [t["score"] for t in got], [t["score"] for t in expected], atol=1e-5
        )
        frames = self.classify.classifier.decoding["num_frames"]
        self.assertEqual(len(answer["answer"]["frames"]), frames)
        self.assertTrue(answer["answer"]["frames"][0].startswith("data:image/jpeg;"))

    def test_only_the_index_images_are_served(self):
        with self.serve() as base:
            size = self.search.index.size
            for path in (
                f"/image/{size}",
                "/image/-1",
                "/image/../../../etc/passwd",
                "/image/..%2F..%2Fetc%2Fpasswd",
                "/image/0/../../../../etc/passwd",
                "/image//etc/passwd",
                "/etc/passwd",
                "/image?path=/etc/passwd",
                "/" + os.path.abspath(self.e.images).lstrip("/"),
                "/../" + self.search.index.ids[0],
            ):
                status, _, body = request(base, "GET", path)
                self.assertEqual(status, 404, path)
                self.assertNotIn(b"root:", body)

    def test_refusals_are_messages_not_tracebacks(self):
        with self.serve(max_upload_bytes=4096) as base:
            for path, body, status_wanted, words in (
                ("/api/search-image?k=3", b"x" * 5000, 413, "larger than"),
                ("/api/classify?name=clip.mp4", b"x" * 5000, 413, "larger than"),
                ("/api/classify?name=clip.mp4", b"not a video at all", 400, ""),
                ("/api/classify?name=notes.txt", b"some text", 400, "video file"),
                ("/api/search-image?k=3", b"not an image", 400, ""),
                ("/api/search-image?k=3", b"", 400, "empty"),
            ):
                with self.subTest(path=path, size=len(body)):
                    status, answer = post_json(base, path, body)
                    self.assertEqual(status, status_wanted, answer)
                    self.assertIn(words, answer["error"])
                    self.assertNotIn("Traceback", answer["error"])
                    self.assertNotIn('File "', answer["error"])
            for path, words in (
                ("/api/search?q=a+dog&k=abc", "whole number"),
                ("/api/search?q=a+dog&k=0", "between 1 and 100"),
                ("/api/search?q=a+dog&depth=-2", "between 0"),
                ("/api/search?q=", "Type a query"),
            ):
                status, answer = get_json(base, path)
                self.assertEqual(status, 400, path)
                self.assertIn(words, answer["error"])

    def test_concurrent_clients_get_the_sequential_answers(self):
        requests = [
            "/api/search?"
            + urllib.parse.urlencode({"q": QUERIES[i % 3], "k": 3 + i % 4})
            for i in range(16 * 200)
        ]
        with self.serve() as base:
            expected = {path: get_json(base, path)[1] for path in set(requests)}
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda path: get_json(base, path), requests))
        for path, (status, answer) in zip(requests, answers, strict=True):
            self.assertEqual(status, 200)
            self.assertEqual(answer, expected[path])
