"""Command line of the retrieval application: `python -m retrieval <command>`."""

import argparse
import json
import sys

from common.data.limits import MAX_IMAGE_PIXELS
from common.training.cli import (
    add_evaluate_arguments,
    add_export_command,
    add_prepare_arguments,
    add_train_command,
    prepare_arguments,
    run_cli,
    train_command,
)

DESCRIPTION = """Image-text retrieval: VGG16 image regions + LSTM text, joined by
cross-modal attention, trained contrastively, evaluated with Recall@K, exported
for TensorFlow Serving, and searchable by text or image."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m retrieval", description=DESCRIPTION
    )
    commands = parser.add_subparsers(dest="command", required=True)

    add_train_command(
        commands,
        presets="demo | flickr8k | flickr30k | coco",
        data_help="dataset folder or manifest (demo: generated if absent)",
        set_example="training.epochs=3",
    )

    p = commands.add_parser(
        "prepare",
        help="write a dataset as TFRecord shards (big or multi-worker training)",
    )
    add_prepare_arguments(
        p,
        data_help="dataset folder or manifest",
        items="images",
        shard_size=256,
        workers_help="image-reading threads (default: 8)",
    )
    p.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS)

    p = commands.add_parser("evaluate", help="Recall@K of a trained run")
    add_evaluate_arguments(
        p, "dataset or prepared folder (default: the one it was trained on)"
    )
    p.add_argument("--rerank-top-k", type=int, help="candidates to re-rank (0: none)")

    add_export_command(commands, "saved_models/retrieval")

    _add_index_commands(commands)
    _add_search_commands(commands)
    return parser


def _add_index_commands(commands):
    """`index` (a gallery -> a search SavedModel) and `merge-index`."""
    p = commands.add_parser("index", help="export a search SavedModel over a gallery")
    p.add_argument(
        "--model",
        required=True,
        help="retrieval SavedModel folder (or one version of it)",
    )
    p.add_argument(
        "--images",
        help="gallery image folder, or a folder written by `prepare` "
        "(to build a new index)",
    )
    p.add_argument("--output", default="saved_models/retrieval_index")
    _add_method_arguments(p)
    p.add_argument(
        "--update",
        metavar="INDEX",
        help="write the next version of this index (one folder or a sharded "
        "one) with --add and --remove applied, embedding only the added images",
    )
    p.add_argument("--add", metavar="IMAGES", help="with --update: images to add")
    p.add_argument(
        "--remove",
        metavar="IDS.txt",
        help="with --update: a file of image ids (one a line) to drop",
    )
    p.add_argument(
        "--retrain",
        action="store_true",
        help="with --update of an IVF index: train the centroids again (done "
        "anyway once the gallery has doubled since they were trained)",
    )
    p.add_argument(
        "--pattern",
        default="*",
        help="only image names matching this glob, e.g. 'test_*.jpg'",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--keep", type=int, help="keep only the newest N versions")
    p.add_argument(
        "--shard",
        metavar="i/N",
        help="index only every N-th image from the i-th (N processes in parallel)",
    )
    p.add_argument(
        "--max-shard-images",
        type=int,
        help="write a gallery larger than this as a sharded index: one search "
        "SavedModel per this many images (OUTPUT/shard-NNNNN-of-MMMMM/)",
    )
    p.add_argument(
        "--rerank-depth",
        type=int,
        help="text searches re-rank this many top candidates with the matching "
        "head, which stores each image's region features in the index "
        "(default: the run's training.rerank_top_k; 0: cosine only, "
        "embeddings alone)",
    )

    p = commands.add_parser(
        "merge-index", help="merge indexes (e.g. --shard i/N ones) into one"
    )
    p.add_argument("--model", required=True, help="the retrieval SavedModel")
    p.add_argument("--inputs", nargs="+", required=True, help="index folders")
    p.add_argument("--output", required=True)
    p.add_argument("--keep", type=int, help="keep only the newest N versions")
    _add_method_arguments(p)


def _add_method_arguments(p):
    """How an index searches: exact or IVF, and the IVF settings."""
    p.add_argument(
        "--method",
        choices=("auto", "exact", "ivf"),
        default="auto",
        help="exact: scan every image; ivf: an inverted-file index that scans "
        "the images of the --nprobe clusters nearest the query; auto (default): "
        "exact below 100,000 images, ivf from there (or with --codes int8)",
    )
    p.add_argument(
        "--nlist",
        type=int,
        help="ivf: number of k-means clusters (default about sqrt(images))",
    )
    p.add_argument(
        "--nprobe",
        type=int,
        help="ivf: clusters scanned per query unless the request says "
        "(default nlist/16, at least 8)",
    )
    p.add_argument(
        "--codes",
        choices=("float32", "int8"),
        default="float32",
        help="ivf: store embeddings as float32 or as int8 codes (a quarter "
        "of the memory; scores from the float query and the decoded codes)",
    )
    p.add_argument(
        "--rescore",
        action="store_true",
        help="with --codes int8: also keep the float32 embeddings and score "
        "the int8 scan's top 4 x k candidates again with them (exact order; "
        "4 more bytes per dimension and image)",
    )


def _add_search_commands(commands):
    """`search` (an index, by text or image) and `explain` (attention PNG)."""
    p = commands.add_parser("search", help="search an index by text or by image")
    p.add_argument(
        "--index",
        action="append",
        help="index folder (one, or sharded); repeat for the --shard i/N "
        "indexes of one gallery "
        "(default saved_models/retrieval_index)",
    )
    p.add_argument("query", nargs="?", help="text query")
    p.add_argument("--image", help="query image instead of text")
    p.add_argument("-k", type=int, default=5, help="results (default 5)")
    p.add_argument(
        "--rerank-depth",
        type=int,
        help="text candidates to re-rank with the matching head (default: the "
        "index's own; 0: cosine only)",
    )
    p.add_argument(
        "--nprobe",
        type=int,
        help="clusters an IVF index scans per query (default: the index's own; "
        "more: higher recall, slower)",
    )
    p.add_argument("--html", help="also write an HTML page of the results")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = commands.add_parser("explain", help="PNG of word-to-region attention")
    p.add_argument("--run", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--output", help="PNG path (default RUN/explain.png)")


def main(argv=None):
    return run_cli(build_parser, run, argv)


def run(args):
    if args.command == "train":
        from retrieval.config import get_config
        from retrieval.train import train

        train_command(args, get_config, train)
    elif args.command == "prepare":
        from retrieval.prepare import prepare

        prepare(
            args.data,
            args.output,
            max_image_pixels=args.max_image_pixels,
            workers=args.workers or 8,
            **prepare_arguments(args),
        )
    elif args.command == "evaluate":
        from retrieval.evaluate import evaluate

        evaluate(
            args.run,
            data_path=args.data,
            split=args.split,
            rerank_top_k=args.rerank_top_k,
        )
    elif args.command == "export":
        from retrieval.export import export

        export(args.run, args.output, version=args.version, keep=args.keep)
    elif args.command == "index" and args.update:
        from retrieval.index_update import update_index

        if args.images:
            raise ValueError("--update takes the new images as --add, not --images.")
        update_index(
            args.model,
            args.update,
            add=args.add,
            remove=args.remove,
            retrain=True if args.retrain else None,
            keep=args.keep,
            pattern=args.pattern,
            batch_size=args.batch_size,
        )
    elif args.command == "index":
        from retrieval.index import build_index, parse_shard

        if not args.images or args.add or args.remove or args.retrain:
            raise ValueError(
                "index: give --images to build an index, or --update INDEX "
                "with --add / --remove to update one."
            )
        build_index(
            args.model,
            args.images,
            args.output,
            batch_size=args.batch_size,
            keep=args.keep,
            pattern=args.pattern,
            shard=parse_shard(args.shard) if args.shard else None,
            max_shard_images=args.max_shard_images,
            rerank_depth=args.rerank_depth,
            settings=_index_settings(args),
        )
    elif args.command == "merge-index":
        from retrieval.index import merge_indexes

        merge_indexes(
            args.model,
            args.inputs,
            args.output,
            keep=args.keep,
            settings=_index_settings(args),
        )
    elif args.command == "search":
        _search(args)
    elif args.command == "explain":
        from retrieval.explain import explain

        explain(args.run, args.image, args.text, args.output)
    return 0


def _index_settings(args):
    from retrieval.ann import IndexSettings

    return IndexSettings(
        args.method, args.nlist, args.nprobe, args.codes, rescore=args.rescore
    )


def _search(args):
    """Prints (or writes as JSON / HTML) the top k of a text or image query."""
    from retrieval.search import search, write_html

    indexes = args.index or ["saved_models/retrieval_index"]
    results, root = search(
        indexes,
        args.query,
        args.image,
        args.k,
        rerank_depth=args.rerank_depth,
        nprobe=args.nprobe,
    )
    label = args.query if args.query is not None else f"image {args.image}"
    if args.json:
        print(json.dumps([{"id": i, "score": s} for i, s in results], indent=2))
    else:
        print(f"Top {len(results)} for {label!r}:")
        for rank, (image_id, score) in enumerate(results, start=1):
            print(f"{rank:4d}  {score:7.3f}  {image_id}")
    if args.html:
        print(f"Wrote {write_html(args.html, label, results, root)}")


if __name__ == "__main__":
    sys.exit(main())
