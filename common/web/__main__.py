r"""Serves the web page over a search index and / or a video SavedModel.

    python -m common.web --index saved_models/retrieval_index \
        --model saved_models/video_understanding --port 8080

Or in front of a running TF Serving (REST), with the gallery's image files
in a local folder:

    python -m common.web --server http://HOST:8501 --gallery IMAGES \
        --video-model video_understanding

It listens on 127.0.0.1 unless `--host` says otherwise; open the printed
address in a browser.
"""

import argparse
import sys

from common.training.cli import quiet_tensorflow


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m common.web",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--index",
        action="append",
        help="search index folder (`retrieval index` output); repeat it for "
        "the --shard i/N indexes of one gallery",
    )
    parser.add_argument(
        "--model", help="video SavedModel folder (`video_understanding export`)"
    )
    parser.add_argument(
        "--server", help="a TF Serving REST address: the models run there"
    )
    parser.add_argument(
        "--gallery",
        help="with --server: the gallery's image folder (turns search on)",
    )
    parser.add_argument(
        "--index-model",
        action="append",
        help="with --server: the index's model name (default retrieval_index); "
        "repeat it for the shards of one gallery",
    )
    parser.add_argument(
        "--video-model",
        help="with --server: the video model's name (turns classify on)",
    )
    parser.add_argument(
        "--decoding",
        help="with --server: the video export's assets.extra/decoding.json "
        "(default: from the served input shapes, 16 kHz sound)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="default: 8080")
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=50.0,
        help="largest image or clip accepted (default: 50); larger: HTTP 413",
    )
    parser.add_argument(
        "--tf-logs", action="store_true", help="show TensorFlow's C++ log lines"
    )
    return parser


def make_server_app(args):
    from common.web import backends
    from common.web.app import make_app

    if args.server:
        search, classify = _remote_backends(args)
    else:
        if not args.index and not args.model:
            raise ValueError("Give --index (search), --model (classify) or both.")
        search = backends.SearchBackend(args.index) if args.index else None
        classify = backends.ClassifyBackend(args.model) if args.model else None
    return make_app(search, classify, int(args.max_upload_mb * 2**20))


def _remote_backends(args):
    import json

    from common.web import backends

    if args.index or args.model:
        raise ValueError("With --server the models run there: give --gallery "
                         "and / or --video-model, not --index or --model.")  # fmt: skip
    if not args.gallery and not args.video_model:
        raise ValueError("With --server, give --gallery (search), --video-model "
                         "(classify) or both.")  # fmt: skip
    search = classify = None
    if args.gallery:
        models = args.index_model or ["retrieval_index"]
        search = backends.RemoteSearchBackend(args.server, models, args.gallery)
    if args.video_model:
        decoding = None
        if args.decoding:
            with open(args.decoding, encoding="utf-8") as f:
                decoding = json.load(f)
        classify = backends.RemoteClassifyBackend(
            args.server, args.video_model, decoding
        )
    return search, classify


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.tf_logs:
        quiet_tensorflow()
    from common.serving import ServingError

    try:
        app = make_server_app(args)
    except (ValueError, OSError, ServingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import uvicorn

    print(f"Serving on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
