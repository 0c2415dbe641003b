"""Fault 3: bad images, captions, videos and manifests, written by the test,
go through the user's path (load -> tf.data -> a training step): each is
skipped and reported or decoded correctly, and the loss stays finite."""

import io
import json
import os
import struct
import zlib

import av
import keras
import numpy as np
from PIL import Image

from common.data.video import write_clip
from common.testing import TestCase
from tests.retrieval.helpers import TINY_OVERRIDES

# What decodes of a streaming mp4 cut in half: its first frame, 0.256 s of sound
# (the encoding is reproducible, `write_clip`, so the cut falls at one place).
TAIL_FRAMES, TAIL_SAMPLES = 1, 4096


def png_claiming(width, height):
    """A valid 1x1 PNG whose header claims `width` x `height` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = 8 + 8  # signature, then length + "IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


class RetrievalBadInputsTest(TestCase):
    def test_bad_images_and_captions(self):
        from retrieval.config import get_config
        from retrieval.data import load_retrieval_data
        from retrieval.model import build_model
        from retrieval.pipeline import training_dataset

        root = self.get_temp_dir()
        images = os.path.join(root, "Images")
        os.makedirs(images)
        rng = np.random.default_rng(0)

        def save(name, image, fmt, **kwargs):
            image.save(os.path.join(images, name), format=fmt, **kwargs)

        for i in range(8):
            pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            save(f"good{i}.jpg", Image.fromarray(pixels), "JPEG")
        base = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
        save("png_named.jpg", base, "PNG")  # wrong extension
        save("gray.jpg", base.convert("L"), "JPEG")
        save("cmyk.jpg", base.convert("CMYK"), "JPEG")
        save("rgba.png", base.convert("RGBA"), "PNG")
        deep = (rng.random((24, 32)) * 65535).astype(np.uint16)
        save("sixteen_bit.png", Image.fromarray(deep), "PNG")
        save("one_pixel.png", Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")
        with open(os.path.join(images, "good0.jpg"), "rb") as f:
            jpeg = f.read()
        with open(os.path.join(images, "truncated.jpg"), "wb") as f:
            f.write(jpeg[: len(jpeg) // 3])
        open(os.path.join(images, "zero_bytes.jpg"), "wb").close()
        with open(os.path.join(images, "bomb.png"), "wb") as f:
            f.write(png_claiming(60000, 60000))

        kept = [f"good{i}.jpg" for i in range(8)] + [
            "png_named.jpg", "gray.jpg", "cmyk.jpg", "rgba.png",
            "sixteen_bit.png", "one_pixel.png",
        ]  # fmt: skip
        with open(os.path.join(root, "captions.txt"), "wb") as f:
            f.write(b"image,caption\n")
            for name in kept + ["truncated.jpg", "zero_bytes.jpg", "bomb.png"]:
                f.write(f"{name},a picture called {name}\n".encode())
            f.write(b"good0.jpg,\n")  # empty
            f.write(b"good1.jpg,   \t  \n")  # whitespace only
            f.write(("good2.jpg," + "long " * 2000 + "\n").encode())  # 10,000 chars
            f.write("good3.jpg,a dog 🐕 runs — كلب يجري\n".encode())  # emoji, RTL
            f.write(b"good4.jpg,caf\xe9 au lait\n")  # invalid UTF-8
        data = load_retrieval_data(root, max_image_pixels=10_000_000, verbose=False)
        names = sorted(os.path.basename(p) for p in data.images)
        self.assertEqual(names, sorted(kept))
        counts = data.report.counts
        self.assertEqual(counts["unreadable or corrupt image"], 1)  # truncated
        self.assertEqual(counts["empty image file"], 1)
        self.assertEqual(counts["image over 10000000 pixels"], 1)  # the bomb
        self.assertEqual(counts["empty caption"], 2)
        self.assertEqual(counts["non-UTF-8 text"], 1)
        summary = data.report.summary()
        for name in ("truncated.jpg", "zero_bytes.jpg", "bomb.png"):
            self.assertIn(name, summary)
        captions = dict(zip(names, [None] * len(names), strict=True))
        for path, texts in zip(data.images, data.captions, strict=True):
            captions[os.path.basename(path)] = texts
        self.assertIn("a dog 🐕 runs — كلب يجري", captions["good3.jpg"])
        self.assertEqual(len(max(captions["good2.jpg"], key=len)), 9999)

        config = get_config("demo", [o for o in TINY_OVERRIDES])
        keras.utils.set_random_seed(0)
        keras.config.set_dtype_policy("float32")
        model = build_model(config)
        model.adapt([c for cs in data.captions for c in cs])
        model.compile(optimizer=keras.optimizers.AdamW(1e-4))
        steps = len(data.images) // 7
        dataset = training_dataset(
            data.images, data.captions, 32, 7, steps_per_epoch=steps
        ).map(lambda i, t: {"images": i, "text": t})
        for batch in dataset.take(steps):
            self.assertEqual(batch["images"].shape, (7, 32, 32, 3))
        history = model.fit(
            dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False
        )
        self.assertTrue(np.isfinite(history.history["loss"]).all())


def tone(seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([wave] * channels) if channels > 1 else wave


def frames(count, height=64, width=80, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (count, height, width, 3), dtype=np.uint8)


class VideoBadInputsTest(TestCase):
    def test_bad_clips_through_prepare(self):
        """Each known bad file has one asserted outcome: kept with a given
        number of decoded frames and sound or not, or skipped, listed once in
        `skipped.json` with its reason."""
        from video_understanding.prepare import prepare
        from video_understanding.records import record_parser

        root = self.get_temp_dir()
        data = os.path.join(root, "clips")
        for label in ("a", "b"):
            os.makedirs(os.path.join(data, label))
            for i in range(3):
                write_clip(os.path.join(data, label, f"good{i}.mp4"),
                           frames(10, seed=i), 10, audio=tone(1.0, 16000))  # fmt: skip
        a = os.path.join(data, "a")
        with open(os.path.join(a, "good0.mp4"), "rb") as f:
            whole = f.read()
        # the index (moov) is at the end: a cut tail loses it
        with open(os.path.join(a, "truncated.mp4"), "wb") as f:
            f.write(whole[: len(whole) // 3])
        with open(os.path.join(a, "truncated_head.mp4"), "wb") as f:
            f.write(whole[200:])
        streaming = os.path.join(root, "streaming.mp4")
        write_clip(streaming, frames(10, seed=7), 10, audio=tone(1.0, 16000),
                   faststart=True)  # fmt: skip
        with open(streaming, "rb") as f:
            fast = f.read()
        # the index first: a cut tail keeps the frames before the cut
        with open(os.path.join(a, "truncated_tail_faststart.mp4"), "wb") as f:
            f.write(fast[: len(fast) // 2])
        open(os.path.join(a, "zero_bytes.mp4"), "wb").close()
        with open(os.path.join(a, "text_named.mp4"), "w") as f:
            f.write("these are notes, not a video\n" * 20)
        with open(os.path.join(a, "notes.txt"), "w") as f:
            f.write("a file of another type in a class folder\n")
        with av.open(os.path.join(a, "audio_only.mp4"), "w") as container:
            stream = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(tone(0.5, 16000)[None], format="fltp",
                                               layout="mono")  # fmt: skip
            frame.sample_rate = 16000
            for packet in list(stream.encode(frame)) + list(stream.encode(None)):
                container.mux(packet)
        # A video stream without a single frame (only sound is muxed).
        with av.open(os.path.join(a, "zero_frames.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            sound = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(
                tone(0.5, 16000)[None], format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            for packet in list(sound.encode(frame)) + list(sound.encode(None)):
                container.mux(packet)
        write_clip(os.path.join(a, "no_audio.mp4"), frames(10), 10)
        write_clip(
            os.path.join(a, "one_frame.mp4"), frames(1), 10, audio=tone(0.1, 16000)
        )
        stereo_48k = tone(0.2, 48000, 2)
        write_clip(os.path.join(a, "uhd_4k.mp4"), frames(2, 2160, 3840), 10,
                   audio=stereo_48k, sample_rate=48000, channels=2)  # fmt: skip
        # A container claiming hours: two frames three hours apart.
        with av.open(os.path.join(a, "hours_long.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for index, pts in enumerate((0, 10 * 3 * 3600)):
                frame = av.VideoFrame.from_ndarray(frames(1, 48, 64, index)[0])
                frame.pts = pts
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        # Corrupt packets: garbage over the middle of the media data.
        corrupt = bytearray(whole)
        middle = len(corrupt) // 2
        corrupt[middle : middle + 600] = (
            np.random.default_rng(3).integers(0, 255, 600, dtype=np.uint8).tobytes()
        )
        with open(os.path.join(a, "corrupt_packets.mp4"), "wb") as f:
            f.write(bytes(corrupt))

        out = os.path.join(root, "prepared")
        metadata = prepare(data, out, num_frames=4, frame_size=32, workers=1,
                           val_fraction=0.0, test_fraction=0.0, max_duration=600,
                           clip_seconds=1.0, verbose=False)  # fmt: skip
        with open(os.path.join(out, "skipped.json")) as f:
            listed = json.load(f)
        skipped = {os.path.basename(p): reason for p, reason in listed}
        self.assertEqual(len(skipped), len(listed))  # each file once
        expected_skips = {
            "truncated.mp4": "cannot open as a video",
            "truncated_head.mp4": "cannot open as a video",
            "text_named.mp4": "cannot open as a video",
            "zero_bytes.mp4": "empty clip file",
            "notes.txt": "not a video file type (.txt)",
            "audio_only.mp4": "no video stream",
            "zero_frames.mp4": "no video stream",  # an empty stream is not muxed
            "hours_long.mp4": "over the 600 s limit",
        }
        self.assertEqual(sorted(skipped), sorted(expected_skips))
        for name, reason in expected_skips.items():
            self.assertIn(reason, skipped[name], name)
        self.assertEqual(metadata["skipped"], len(expected_skips))

        import tensorflow as tf

        parse = record_parser(metadata["settings"])
        files = [os.path.join(out, n) for n in metadata["shards"]["train"]]
        kept = {}
        for raw in tf.data.TFRecordDataset(files):
            feature = tf.train.Example.FromString(raw.numpy()).features.feature
            name = os.path.basename(feature["path"].bytes_list.value[0].decode())
            inputs, _ = parse(raw)
            self.assertEqual(inputs["frames"].shape, (4, 32, 32, 3))
            self.assertEqual(inputs["audio"].shape, (16000,))
            self.assertTrue(np.isfinite(inputs["audio"].numpy()).all())
            kept[name] = (
                feature["frames_decoded"].int64_list.value[0],
                bool(inputs["audio_present"]),
                feature["audio_samples"].int64_list.value[0],
            )
        # name -> (distinct frames decoded, has sound, real audio samples)
        expected_kept = {
            **{f"good{i}.mp4": (4, True, 16000) for i in range(3)},
            "no_audio.mp4": (4, False, 0),
            "one_frame.mp4": (1, True, 1600),
            "uhd_4k.mp4": (2, True, 3200),
            "corrupt_packets.mp4": (4, True, 16000),
            "truncated_tail_faststart.mp4": (TAIL_FRAMES, True, TAIL_SAMPLES),
        }
        self.assertEqual(len(kept), len(expected_kept))  # b's clips share names
        for name, outcome in expected_kept.items():
            self.assertEqual(kept[name], outcome, name)
        self.assertEqual(metadata["without_audio"], 1)
        self.assertEqual(metadata["counts"]["train"], 3 + len(expected_kept))
