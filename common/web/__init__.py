"""A web page over the exported models: search a gallery by text or by an
image and see the thumbnails, classify an uploaded clip and see its top
classes and the frames the model saw. `python -m common.web --help`.

The one part of `common` that uses the applications: it serves their
exports (`retrieval.search.LoadedIndex`, `video_understanding.predict.
LoadedClassifier`), imported when a backend is made.
"""

from common.web.app import MAX_UPLOAD_BYTES, make_app

__all__ = ["MAX_UPLOAD_BYTES", "make_app"]
