"""The web page tests' shared pieces: the exports they serve, and HTTP
requests to a server (`common.web.server.serving`)."""

import glob
import http.client
import json
import os

from common.testing import TestCase
from common.web.server import serving  # noqa: F401 (re-exported for the tests)


class ExportedBackendsTest(TestCase):
    """Tests over the session's tiny exports (`tests.exported_models`): the
    page's `search` and `classify` backends and the demo clips."""

    @classmethod
    def setUpClass(cls):
        from common.web.backends import ClassifyBackend, SearchBackend
        from tests.exported_models import exported

        super().setUpClass()
        cls.e = exported()
        cls.search = SearchBackend(cls.e.index)
        cls.classify = ClassifyBackend(cls.e.video)
        pattern = os.path.join(cls.e.video_run, "**", "*.mp4")
        cls.clips = sorted(glob.glob(pattern, recursive=True))


def request(base, method, path, body=None, headers=None):
    """`(status, headers, body bytes)` of one request, the path sent as it is
    (no client-side normalisation of `..`)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(base, path):
    status, _, body = request(base, "GET", path)
    return status, json.loads(body)


def post_json(base, path, body):
    status, _, reply = request(base, "POST", path, body=body)
    return status, json.loads(reply)
