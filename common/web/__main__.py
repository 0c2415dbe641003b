"""Serves the web page over a search index and / or a video SavedModel.

    python -m common.web --index saved_models/retrieval_index \
        --model saved_models/video_understanding --port 8080

It listens on 127.0.0.1 unless `--host` says otherwise; open the printed
address in a browser.
"""

import argparse
import sys

from common.training.cli import quiet_tensorflow


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m common.web",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
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
    from common.web.app import make_app
    from common.web.backends import ClassifyBackend, SearchBackend

    if not args.index and not args.model:
        raise ValueError("Give --index (search), --model (classify) or both.")
    search = SearchBackend(args.index) if args.index else None
    classify = ClassifyBackend(args.model) if args.model else None
    return make_app(search, classify, int(args.max_upload_mb * 2**20))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.tf_logs:
        quiet_tensorflow()
    try:
        app = make_server_app(args)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import uvicorn

    print(f"Serving on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
