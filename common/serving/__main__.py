"""Command-line client for the suite's models on TensorFlow Serving.

    python -m common.serving embed-text --server http://localhost:8501 "a dog"
    python -m common.serving search --server localhost:8501 -k 5 "a dog on grass"
    python -m common.serving search --grpc localhost:8500 --image query.jpg
    python -m common.serving classify --server localhost:8501 clip.mp4
    python -m common.serving promote --model retrieval --version 3

`classify` decodes each clip here (PyAV) and sends the tensors; the frame count
and size come from the model's metadata (REST) or --num-frames/--frame-size.
`promote` points the `stable` label of a model in models.config at a version.
"""

import argparse
import json
import os
import sys

import numpy as np


def make_client(args, default_model, model=None):
    from common.serving import GrpcClient, RestClient

    model = model or args.model or default_model
    if args.grpc:
        return GrpcClient(
            args.grpc, model, args.version, args.label, timeout=args.timeout
        )
    return RestClient(args.server, model, args.version, args.label, args.timeout)


def embed_text(args):
    client = make_client(args, "retrieval")
    out = client.predict({"text": args.text}, signature_name="embed_text")
    embeddings = np.asarray(out["embeddings"], dtype=np.float32)
    if args.json:
        print(json.dumps({"embeddings": embeddings.tolist()}))
        return 0
    for text, vector in zip(args.text, embeddings, strict=True):
        head = " ".join(f"{v:+.4f}" for v in vector[:4])
        print(f"{text!r}: dim {len(vector)}, norm {np.linalg.norm(vector):.4f}, "
              f"[{head} ...]")  # fmt: skip
    return 0


def search(args):
    if (args.query is None) == (args.image is None):
        raise SystemExit("Give exactly one of a text query or --image PATH.")
    if args.image:
        if not os.path.isfile(args.image):
            raise SystemExit(f"Query image not found: {args.image!r}.")
        with open(args.image, "rb") as f:
            inputs, signature = {"image_bytes": [f.read()]}, "search_by_image"
    else:
        inputs, signature = {"text": [args.query]}, "search_by_text"
    inputs["k"] = [args.k]
    from common.serving.topk import merge_top_k

    # Several models: the shards of one gallery (`retrieval index
    # --max-shard-images` or `--shard i/N`), each answering its own top-k.
    answers = []
    for model in args.model or ["retrieval_index"]:
        client = make_client(args, "retrieval_index", model)
        out = client.predict(inputs, signature_name=signature)
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in out["ids"][0]]
        answers.append(
            list(zip(ids, (float(s) for s in out["scores"][0]), strict=True))
        )
    results = merge_top_k(answers, args.k)
    if args.json:
        print(json.dumps([{"id": i, "score": s} for i, s in results]))
    else:
        for rank, (i, s) in enumerate(results, 1):
            print(f"{rank:3d}. {s:+.4f}  {i}")
    return 0


def classify(args):
    from common.data.video import decode_clip

    client = make_client(args, "video_understanding")
    num_frames, frame_size = args.num_frames, args.frame_size
    if (num_frames is None or frame_size is None) and not args.grpc:
        frames_shape = client.input_shapes("serving_default")["frames"]
        num_frames = num_frames or frames_shape[1]
        frame_size = frame_size or frames_shape[2]
    if not num_frames or not frame_size or num_frames < 1 or frame_size < 1:
        raise SystemExit(
            "Give --num-frames and --frame-size (as the model was trained)."
        )
    results = []
    for path in args.clips:
        clip = decode_clip(
            path, num_frames, frame_size, args.sample_rate, args.clip_seconds
        )
        out = client.predict(
            {"frames": clip.frames[None], "audio": clip.audio[None]},
            signature_name="serving_default",
        )
        labels = [c.decode() if isinstance(c, bytes) else str(c)
                  for c in out["top_classes"][0]]  # fmt: skip
        top = [
            {"label": c, "score": float(s)}
            for c, s in zip(labels, out["top_scores"][0], strict=True)
        ][: args.k]
        results.append({"clip": path, "top": top})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(r["clip"])
            for t in r["top"]:
                print(f"  {t['score']:.3f}  {t['label']}")
    return 0


def promote(args):
    from google.protobuf import text_format

    from common.export import list_versions
    from common.serving.protos import parse_model_config

    config = parse_model_config(args.config)
    models = {c.name: c for c in config.model_config_list.config}
    if args.model not in models:
        raise SystemExit(f"{args.config} has no model {args.model!r}: {sorted(models)}")
    folder = args.models_dir or os.path.dirname(os.path.abspath(args.config))
    versions = list_versions(os.path.join(folder, args.model))
    version = args.version or (versions[-1] if versions else None)
    if version is None or version not in versions:
        raise SystemExit(
            f"Version {version} of {args.model!r} is not under {folder} "
            f"(found {versions}); export it first."
        )
    models[args.model].version_labels[args.label_name] = version
    header = []
    with open(args.config, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            header.append(line)
    tmp = args.config + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(header)
        f.write(text_format.MessageToString(config))
    os.replace(tmp, args.config)
    print(f"{args.config}: {args.model} {args.label_name} -> version {version}")
    return 0


def _client_options(p, shards=False):
    """The server, model and output flags of the client commands."""
    p.add_argument("--server", default="http://localhost:8501", help="REST URL")
    p.add_argument("--grpc", metavar="HOST:PORT", help="use gRPC instead")
    if shards:
        p.add_argument(
            "--model",
            action="append",
            help="model name (default retrieval_index); repeat it for the "
            "shards of one gallery: their top-k are merged",
        )
    else:
        p.add_argument("--model", help="model name (default: the app's)")
    p.add_argument("--version", type=int, help="pin a model version")
    p.add_argument("--label", help="pin a version label, e.g. stable")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds")
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m common.serving",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("embed-text", help="text embeddings from `retrieval`")
    _client_options(p)
    p.add_argument("text", nargs="+")
    p.set_defaults(run=embed_text)

    p = commands.add_parser("search", help="top-k gallery images for a query")
    _client_options(p, shards=True)
    p.add_argument("query", nargs="?", help="text query")
    p.add_argument("--image", help="query image file instead of text")
    p.add_argument("-k", type=int, default=5)
    p.set_defaults(run=search)

    p = commands.add_parser("classify", help="label clips with video_understanding")
    _client_options(p)
    p.add_argument("clips", nargs="+")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--num-frames", type=int, help="default: from the metadata")
    p.add_argument("--frame-size", type=int, help="default: from the metadata")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument(
        "--clip-seconds",
        type=float,
        help="window in seconds, as the model was trained (its "
        "assets.extra/decoding.json); default: the whole clip",
    )
    p.set_defaults(run=classify)

    p = commands.add_parser("promote", help="move a model's `stable` label")
    p.add_argument("--config", default="saved_models/models.config")
    p.add_argument("--model", required=True)
    p.add_argument("--version", type=int, help="default: the newest exported")
    p.add_argument("--label-name", default="stable")
    p.add_argument("--models-dir", help="default: the config's folder")
    p.set_defaults(run=promote)

    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from common.serving import ServingError

    try:
        return args.run(args)
    except (ServingError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
