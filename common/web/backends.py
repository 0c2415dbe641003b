"""What the web page asks: a search index and a video model, loaded once in
this process, answering many requests (TensorFlow's signatures are safe to
call from several threads)."""

import base64
import contextlib
import io
import os
import tempfile
import time

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
        with _uploaded_clip(clip_bytes, name) as path:
            top, clip = self.classifier.classify(path, k)
        return {
            "top": top,
            "frames": [_jpeg_data_url(frame) for frame in clip.frames],
            "audio_present": bool(clip.audio_present),
        }


@contextlib.contextmanager
def _uploaded_clip(clip_bytes, name):
    """The path of a private temporary file holding an uploaded clip, named
    by the server (`name` gives only its suffix, one of `CLIP_SUFFIXES`)."""
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
        yield path


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


class RemoteSearchBackend:
    """A search index served by TF Serving (`search_by_text`,
    `search_by_text_reranked`, `search_by_image` over REST; several model
    names for the shards of one gallery, their top-k merged) and the
    gallery's image files in a local folder, served by their number in its
    listing (results whose id the folder lacks have no thumbnail)."""

    def __init__(self, server, models, gallery):
        from common.serving import RestClient
        from retrieval.gallery import list_gallery

        self.clients = [RestClient(server, model) for model in models]
        self.root = os.path.abspath(gallery)
        self.files = list_gallery(self.root)
        self.positions = {
            os.path.relpath(path, self.root): n for n, path in enumerate(self.files)
        }

    def info(self):
        versions = [_served_version(client) for client in self.clients]
        return {
            "version": _version_name(versions),
            "size": len(self.files),
            "rerank_depth": None,
        }

    def search(self, query=None, image_bytes=None, k=5, rerank_depth=None):
        from common.serving.topk import merge_top_k

        if (query is None) == (image_bytes is None):
            raise ValueError("Give exactly one of a text query or an image.")
        if image_bytes is not None:
            inputs, signature = {"image_bytes": [image_bytes]}, "search_by_image"
        elif rerank_depth is not None:
            inputs = {"text": [query], "rerank_depth": [rerank_depth]}
            signature = "search_by_text_reranked"
        else:
            inputs, signature = {"text": [query]}, "search_by_text"
        inputs["k"] = [k]
        answers = []
        for client in self.clients:
            out = client.predict(inputs, signature_name=signature)
            ids = [_text(i) for i in out["ids"][0]]
            answers.append(list(zip(ids, map(float, out["scores"][0]), strict=True)))
        return [
            {
                "rank": rank,
                "id": image_id,
                "score": score,
                "image": (
                    f"/image/{self.positions[image_id]}"
                    if image_id in self.positions
                    else None
                ),
            }
            for rank, (image_id, score) in enumerate(merge_top_k(answers, k), 1)
        ]

    def image_path(self, position):
        return self.files[position] if 0 <= position < len(self.files) else None


class RemoteClassifyBackend:
    """A video model served by TF Serving (`serving_default` over REST): an
    uploaded clip is decoded here with `decoding` (the export's
    `assets.extra/decoding.json`, or read from the signature's input shapes
    when not given) and its frames and sound sent to the server."""

    def __init__(self, server, model, decoding=None):
        from common.serving import RestClient

        self.client = RestClient(server, model)
        self.decoding = decoding or _decoding_from_shapes(
            self.client.input_shapes("serving_default")
        )

    def info(self):
        return {"version": _version_name([_served_version(self.client)])}

    def classify(self, clip_bytes, name, k=5):
        from common.data.video import decode_with

        with _uploaded_clip(clip_bytes, name) as path:
            clip = decode_with(path, self.decoding)
        out = self.client.predict(
            {"frames": clip.frames[None], "audio": clip.audio[None]},
            signature_name="serving_default",
        )
        labels = [_text(c) for c in out["top_classes"][0]]
        scores = [float(s) for s in out["top_scores"][0]]
        top = [{"label": c, "score": s} for c, s in zip(labels, scores, strict=True)]
        return {
            "top": top[:k],
            "frames": [_jpeg_data_url(frame) for frame in clip.frames],
            "audio_present": bool(clip.audio_present),
        }


def _decoding_from_shapes(shapes, sample_rate=16000):
    """Decoding settings from `serving_default`'s input shapes: frames
    `[-1, T, S, S, 3]` and audio `[-1, N]` (N samples at `sample_rate` make
    the window; -1: the whole clip)."""
    frames, audio = shapes["frames"], shapes.get("audio", [-1, -1])
    if len(frames) != 5 or min(frames[1:3]) < 1:
        raise ValueError(
            f"The served model's frames input {frames} gives no frame count and "
            "size; pass the export's assets.extra/decoding.json (--decoding)."
        )
    samples = audio[1] if len(audio) == 2 else -1
    return {
        "num_frames": frames[1],
        "frame_size": frames[2],
        "sample_rate": sample_rate,
        "clip_seconds": samples / sample_rate if samples > 0 else None,
    }


# How long a served model's version is trusted before TF Serving is asked
# again: every answer names its version without a metadata call per query.
VERSION_SECONDS = 10.0


def _served_version(client):
    """The version TF Serving answers with for `client`'s model (asked at
    most every `VERSION_SECONDS`)."""
    now = time.monotonic()
    cached = getattr(client, "_served_version", None)
    if cached is None or now - cached[1] > VERSION_SECONDS:
        spec = client.metadata().get("model_spec", {})
        cached = (str(spec.get("version", "?")), now)
        client._served_version = cached
    return cached[0]


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
