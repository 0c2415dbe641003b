"""Video decoding: `prepare` frames/s vs the `ffmpeg` command-line tool.

Both decode the same clips (H.264 + AAC 44.1 kHz stereo, 320x240, 30 fps) to
the same output: `num_frames` frames sampled over each clip, scaled
(aspect-preserving) and centre-cropped to `frame_size`, and the sound as
16 kHz mono float. Both use one process per CPU: `prepare --workers N`, and
N `ffmpeg -threads 1` processes at a time (the usual `xargs -P N` batch).
ffmpeg's figure counts only decoding and scaling; `prepare` also JPEG-encodes
the frames and writes TFRecord shards, so the comparison favours ffmpeg.

Target: prepare at most 1.5x slower than ffmpeg.

    python bench/video_decode.py [--quick]

ffmpeg is the one from `imageio-ffmpeg` (`pip install -e .[bench]`) or on PATH.
"""

import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, result, write_report  # noqa: E402
from common.data.video import write_clip  # noqa: E402
from video_understanding.prepare import prepare  # noqa: E402


def ffmpeg_binary():
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        sys.exit("No ffmpeg: pip install imageio-ffmpeg (the bench extra).")
    return imageio_ffmpeg.get_ffmpeg_exe()


def write_clips(root, count, seconds, size=(240, 320), fps=30, rate=44100):
    rng = np.random.default_rng(0)
    frames_per_clip = int(seconds * fps)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    background = np.stack([xx * 255 // w, yy * 255 // h, 128 + 0 * xx], -1)
    for i in range(count):
        label = f"class{i % 4}"
        os.makedirs(os.path.join(root, label), exist_ok=True)
        frames = np.repeat(background[None], frames_per_clip, 0).astype(np.uint8)
        for t in range(frames_per_clip):
            y, x = (t * 3 + i * 7) % (h - 40), (t * 5 + i * 11) % (w - 40)
            frames[t, y : y + 40, x : x + 40] = rng.integers(0, 255, 3)
        frames += rng.integers(0, 12, frames.shape, dtype=np.uint8)  # texture
        t = np.arange(int(seconds * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t)
        stereo = np.stack([tone, 0.5 * tone]).astype(np.float32)
        write_clip(
            os.path.join(root, label, f"clip{i:03d}.mp4"),
            frames,
            fps,
            audio=stereo,
            sample_rate=rate,
            channels=2,
        )


def ffmpeg_decode(binary, path, num_frames, frame_size, seconds, out_dir):
    """Uniform `num_frames` frames scaled+cropped, and 16 kHz mono audio."""
    stem = os.path.join(out_dir, os.path.basename(path))
    s = frame_size
    command = [
        binary, "-v", "error", "-nostdin", "-threads", "1", "-i", path,
        "-map", "0:v", "-vf",
        f"fps={num_frames / seconds},scale={s}:{s}:"
        f"force_original_aspect_ratio=increase,crop={s}:{s}",
        "-frames:v", str(num_frames), "-pix_fmt", "rgb24", "-f", "rawvideo",
        "-y", stem + ".rgb",
        "-map", "0:a", "-ac", "1", "-ar", "16000", "-f", "f32le", "-y", stem + ".pcm",
    ]  # fmt: skip
    subprocess.run(command, check=True)
    frames = os.path.getsize(stem + ".rgb") // (s * s * 3)
    return frames


def main(argv=None):
    parser = bench_parser(__doc__, "video_decode", quick_help="fewer, shorter clips")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--frame-size", type=int, default=112)
    args = parser.parse_args(argv)
    count, seconds = (8, 3) if args.quick else (32, 4)
    binary = ffmpeg_binary()
    with tempfile.TemporaryDirectory() as tmp:
        clips = os.path.join(tmp, "clips")
        write_clips(clips, count, seconds)
        paths = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(clips)
            for name in names
        )
        out = os.path.join(tmp, "ffmpeg")
        os.makedirs(out)

        def run_ffmpeg():
            with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
                return list(
                    pool.map(
                        lambda p: ffmpeg_decode(
                            binary, p, args.num_frames, args.frame_size, seconds, out
                        ),
                        paths,
                    )
                )

        def run_prepare(index):
            prepare(
                clips,
                os.path.join(tmp, f"prepared{index}"),
                num_frames=args.num_frames,
                frame_size=args.frame_size,
                workers=args.workers,
                shard_size=max(1, count // (2 * args.workers)),
                verbose=False,
            )

        ffmpeg_times, prepare_times = [], []
        for index in range(3):  # interleaved, so drift hits both alike
            start = time.perf_counter()
            frames = run_ffmpeg()
            ffmpeg_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            run_prepare(index)
            prepare_times.append(time.perf_counter() - start)
    if min(frames) != args.num_frames:
        raise RuntimeError(f"ffmpeg wrote {frames} frames, not {args.num_frames}")
    total = count * args.num_frames
    ffmpeg_fps = total / float(np.median(ffmpeg_times))
    prepare_fps = total / float(np.median(prepare_times))
    results = [
        result("video_decode_ffmpeg_frames_per_s", ffmpeg_fps, "frames/s"),
        result("video_decode_prepare_frames_per_s", prepare_fps, "frames/s"),
        result(
            "video_decode_prepare_slowdown_vs_ffmpeg",
            ffmpeg_fps / prepare_fps,
            "x",
            1.5,
            at_least=False,
        ),
    ]
    settings = {
        "clips": count,
        "seconds": seconds,
        "source": "320x240 30 fps H.264, AAC 44.1 kHz stereo",
        "num_frames": args.num_frames,
        "frame_size": args.frame_size,
        "workers": args.workers,
        "ffmpeg": binary,
    }
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
