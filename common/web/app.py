"""The web page's server: one page, a JSON API over the search index and the
video model, and the gallery's images by their number in the index.

Nothing here reads a path taken from a request: images are looked up by
position in the index's own id list, uploads go to private temporary files
named by the server, and any other URL is a 404.
"""

import logging

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from common.web.page import PAGE

LOG = logging.getLogger("common.web")

MAX_UPLOAD_BYTES = 50 * 2**20  # 50 MiB, far above a search image or a short clip
MAX_K = 100


def make_app(search=None, classify=None, max_upload_bytes=MAX_UPLOAD_BYTES):
    """A Starlette app over a `SearchBackend` and / or a `ClassifyBackend`
    (`common.web.backends`); `max_upload_bytes` bounds an uploaded image
    or clip (a larger one is answered 413)."""

    async def page(request):
        return HTMLResponse(PAGE)

    async def info(request):
        # in a worker thread: a TF Serving backend asks the server
        return JSONResponse(
            {
                "search": await run_in_threadpool(search.info) if search else None,
                "classify": (
                    await run_in_threadpool(classify.info) if classify else None
                ),
            }
        )

    async def search_text(request):
        backend = _present(search, "search index (--index)")
        query = request.query_params.get("q", "").strip()
        if not query:
            raise Refused(400, "Type a query.")
        depth = _int(request, "depth", None, 0, 10_000)
        return await _answer(
            backend.search, query=query, k=_k(request), rerank_depth=depth
        )

    async def search_image(request):
        backend = _present(search, "search index (--index)")
        body = await _body(request, max_upload_bytes)
        return await _answer(backend.search, image_bytes=body, k=_k(request))

    async def classify_clip(request):
        backend = _present(classify, "video model (--model)")
        name = request.query_params.get("name", "")
        body = await _body(request, max_upload_bytes)
        return await _answer(
            backend.classify, clip_bytes=body, name=name, k=_k(request)
        )

    async def image(request):
        path = search.image_path(request.path_params["position"]) if search else None
        if path is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        return FileResponse(path)

    routes = [
        Route("/", page),
        Route("/api/info", info),
        Route("/api/search", _checked(search_text)),
        Route("/api/search-image", _checked(search_image), methods=["POST"]),
        Route("/api/classify", _checked(classify_clip), methods=["POST"]),
        Route("/image/{position:int}", image),
    ]
    return Starlette(routes=routes)


class Refused(Exception):
    """A request this server answers with `status` and a one-line message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _checked(handler):
    """`handler`, answering a `Refused` request with its status and message."""

    async def checked(request):
        try:
            return await handler(request)
        except Refused as refusal:
            return _error(refusal.status, str(refusal))

    return checked


def _int(request, name, default, low, high):
    text = request.query_params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        message = f"`{name}` must be a whole number; received {text!r}."
        raise Refused(400, message) from None
    if not low <= value <= high:
        raise Refused(
            400, f"`{name}` must be between {low} and {high}; received {value}."
        )
    return value


def _k(request):
    return _int(request, "k", 5, 1, MAX_K)


def _present(backend, what):
    if backend is None:
        raise Refused(404, f"This server has no {what}.")
    return backend


async def _body(request, limit):
    """The request body; refused (413) past `limit` bytes, read no further
    than that."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise Refused(400, "The upload is empty.")
    return body


async def _answer(function, **arguments):
    """`function(**arguments)` (a backend's method) in a worker thread, as
    JSON with the model version that answered; a refused input is a 400 with
    its message, any other failure a 500 with one line (the details go to
    the server log)."""

    def call():
        return function(**arguments), function.__self__.info()["version"]

    try:
        result, version = await run_in_threadpool(call)
    except Exception as error:  # noqa: BLE001 - every failure becomes a message
        status, message = _describe(error)
        if status == 500:
            LOG.exception("request failed")
        return _error(status, message)
    key = "results" if isinstance(result, list) else "answer"
    return JSONResponse({"version": version, key: result})


def _describe(error):
    """`(status, one-line message)` of an exception, without a traceback."""
    import tensorflow as tf

    from common.data.video import ClipDecodeError
    from common.serving import ServingError

    if isinstance(error, ValueError | ClipDecodeError):
        return 400, str(error).strip().splitlines()[0] if str(
            error
        ).strip() else "Bad input."
    if isinstance(error, tf.errors.InvalidArgumentError):
        return 400, _op_error_line(error)
    if isinstance(error, ServingError):  # TF Serving refused or is away
        status = error.status if error.status and error.status < 500 else 502
        lines = str(error).strip().splitlines()
        return status, lines[0] if lines else "TF Serving did not answer."
    return 500, f"The model failed ({type(error).__name__}); see the server log."


def _op_error_line(error):
    """The check's own message of a TensorFlow op error, without the graph
    location and Python frames TensorFlow adds around it."""
    lines = [line.strip() for line in str(error.message).splitlines()]
    lines = [
        line
        for line in lines
        if line
        and not line.startswith(("[[", "File ", "Detected at node"))
        and not line.endswith(":")
    ]
    text = lines[-1] if lines else "The input was refused."
    return text.split(" [Op:", 1)[0].split("\t [[", 1)[0].strip()


def _error(status, message):
    return JSONResponse({"error": message}, status_code=status)


def _too_large(limit):
    size = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit:,} bytes"
    return Refused(413, f"The upload is larger than {size}.")
