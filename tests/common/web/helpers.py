"""A web page server on a free local port, in a thread of the test process."""

import contextlib
import http.client
import json
import socket
import threading
import time


@contextlib.contextmanager
def serving(app):
    """Yields the `http://127.0.0.1:PORT` of `app` served by uvicorn."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("The web server did not start.")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


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
