"""What the web page asks: a search index and a video model, loaded once in
this process, answering many requests (TensorFlow's signatures are safe to
call from several threads)."""

import base64
import io
import os
import tempfile

import numpy as np

# The container types the classify upload may have (its name gives only
# the suffix of a temporary file; the decoder checks the content).
CLIP_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov")


class SearchBackend:
    """A retrieval search index (`retrieval index` output; one folder, a
    sharded folder or several shard folders) and its gallery's files,
    served by their position in the index's own id list."""

    def __init__(self, index):
        from retrieval.search import LoadedIndex

        self.index = LoadedIndex(index)
        self.positions = {image_id: n for n, image_id in enumerate(self.index.ids)}

    def info(self):
        return {
            "version": _version_name(self.index.versions),
            "size": self.index.size,
            "rerank_depth": self.index.rerank_depth,
        }

    def search(self, query=None, image_bytes=None, k=5, rerank_depth=None):
        """`[{"rank", "id", "score", "image"}]`: `image` is the URL path of
        the result's file on this server."""
        results = self.index.search(query, image_bytes, k, rerank_depth)
        return [
            {
                "rank": rank,
                "id": image_id,
                "score": score,
                "image": f"/image/{self.positions[image_id]}",
            }
            for rank, (image_id, score) in enumerate(results, start=1)
        ]

    def image_path(self, position):
        """The file of gallery image number `position`, or None: only files
        the index lists are served, whatever the request holds."""
        if not 0 <= position < len(self.index.ids):
            return None
        root = self.index.gallery_root
        path = os.path.join(root, self.index.ids[position])
        return path if os.path.isfile(path) else None


class ClassifyBackend:
    """An exported video SavedModel: an uploaded clip is written to a private
    temporary file, decoded as training decoded clips, and classified."""

    def __init__(self, model):
        from video_understanding.predict import LoadedClassifier

        self.classifier = LoadedClassifier(model)

    def info(self):
        return {
            "version": _version_name([self.classifier.version]),
            "classes": len(self.classifier.names),
        }

    def classify(self, clip_bytes, name, k=5):
        """`{"top": [{"label", "score"}], "frames": [data URLs],
        "audio_present"}` of an uploaded clip."""
        suffix = os.path.splitext(str(name))[1].lower()
        if suffix not in CLIP_SUFFIXES:
            raise ValueError(
                f"Upload a video file ({', '.join(CLIP_SUFFIXES)}); received "
                f"{os.path.basename(str(name))!r}."
            )
        with tempfile.TemporaryDirectory(prefix="mmsuite-upload-") as folder:
            path = os.path.join(folder, "clip" + suffix)
            with open(path, "wb") as f:
                f.write(clip_bytes)
            top, clip = self.classifier.classify(path, k)
        return {
            "top": top,
            "frames": [_jpeg_data_url(frame) for frame in clip.frames],
            "audio_present": bool(clip.audio_present),
        }


def _version_name(versions):
    """`"3"`, or `"3 (2 shards)"`: the version folder(s) answering."""
    names = sorted({os.path.basename(os.path.normpath(v)) for v in versions})
    text = ", ".join(names)
    return text if len(versions) == 1 else f"{text} ({len(versions)} shards)"


def _jpeg_data_url(frame):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(buffer, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
