"""HTTP requests to a web page server (`common.web.server.serving`)."""

import http.client
import json

from common.web.server import serving  # noqa: F401 (re-exported for the tests)


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
