import os
import pathlib
from unittest import mock

import numpy as np

from common.data.video import ClipDecodeError, choose_window, decode_clip, write_clip
from common.testing import TestCase


def numbered_frames(count, height=48, width=64):
    """Frame i is a flat grey of brightness 10 * i (readable after H.264)."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for i in range(count):
        frames[i] = (10 * i) % 250
    return frames


def tone(frequency, seconds, rate, amplitude=0.4):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_hz(signal, rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.argmax(spectrum) * rate / len(signal)


class DecodeClipTest(TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()

    def test_frames_are_sampled_uniformly(self):
        path = write_clip(os.path.join(self.dir, "n.mp4"), numbered_frames(20), fps=10)
        clip = decode_clip(path, num_frames=4, frame_size=32)
        # targets at 0.25, 0.75, 1.25, 1.75 s -> frames 2, 7, 12, 17 (10 fps)
        brightness = clip.frames.reshape(4, -1).mean(axis=1)
        np.testing.assert_allclose(brightness, [20, 70, 120, 170], atol=4)
        self.assertEqual(clip.frames.shape, (4, 32, 32, 3))
        self.assertEqual(clip.frames.dtype, np.uint8)
        self.assertAlmostEqual(clip.duration, 2.0, places=1)

    def test_a_clip_that_declares_no_duration_is_sampled_from_its_frames(self):
        # Streamed containers may declare no length: every frame is kept with
        # its time and the window is found from the last one.
        path = write_clip(os.path.join(self.dir, "n.mp4"), numbered_frames(20), fps=10)
        with mock.patch("common.data.video._declared_duration", return_value=None):
            clip = decode_clip(path, num_frames=4, frame_size=32)
            window = decode_clip(path, num_frames=2, frame_size=32, clip_seconds=1.0)
        brightness = clip.frames.reshape(4, -1).mean(axis=1)
        np.testing.assert_allclose(brightness, [20, 70, 120, 170], atol=4)
        self.assertAlmostEqual(clip.duration, 2.0, places=1)
        self.assertEqual(clip.frames_decoded, 4)
        # The centred 1 s window of 2 s: 0.5-1.5 s, targets 0.75 and 1.25 s.
        self.assertAlmostEqual(window.start, 0.5, places=1)
        brightness = window.frames.reshape(2, -1).mean(axis=1)
        np.testing.assert_allclose(brightness, [70, 120], atol=4)

    def test_44khz_stereo_aac_tone_stays_at_440_hz(self):
        path = write_clip(
            os.path.join(self.dir, "tone.mp4"),
            numbered_frames(20),
            fps=10,
            audio=tone(440, 2.0, 44100),
            sample_rate=44100,
            channels=2,
        )
        clip = decode_clip(path, num_frames=4, frame_size=32, sample_rate=16000)
        self.assertTrue(clip.audio_present)
        self.assertEqual(clip.audio.shape, (32000,))
        self.assertAlmostEqual(peak_hz(clip.audio[2000:30000], 16000), 440, delta=3)
        self.assertGreater(np.abs(clip.audio).max(), 0.2)

    def test_window_audio_is_aligned_with_the_window(self):
        audio = np.concatenate([tone(440, 1.0, 48000), tone(1000, 1.0, 48000)])
        path = write_clip(
            os.path.join(self.dir, "two.mkv"),
            numbered_frames(20),
            fps=10,
            audio=audio,
            sample_rate=48000,
            audio_codec="libopus",
        )
        clip = decode_clip(path, 2, 32, sample_rate=16000, clip_seconds=1.0)
        self.assertAlmostEqual(clip.start, 0.5, delta=0.02)  # container padding
        first, second = clip.audio[:7000], clip.audio[9000:]
        self.assertAlmostEqual(peak_hz(first, 16000), 440, delta=5)
        self.assertAlmostEqual(peak_hz(second, 16000), 1000, delta=5)
        # frames at the window's 1/4 and 3/4 (first frame at or after each
        # target, half a frame of slack); mkv declares a slightly longer clip
        targets = clip.start + clip.window * np.array([0.25, 0.75])
        expected = 10 * np.ceil((targets - 0.05) * 10 - 1e-9)
        np.testing.assert_allclose(
            clip.frames.reshape(2, -1).mean(axis=1), expected, atol=4
        )

    def test_mp3_in_avi_and_portrait_resolution(self):
        path = write_clip(
            os.path.join(self.dir, "p.avi"),
            numbered_frames(10, 98, 34),
            fps=5,
            audio=tone(300, 2.0, 22050),
            sample_rate=22050,
            video_codec="mpeg4",
            audio_codec="libmp3lame",
        )
        clip = decode_clip(path, 3, 32, sample_rate=16000)
        self.assertEqual(clip.frames.shape, (3, 32, 32, 3))
        self.assertAlmostEqual(peak_hz(clip.audio[4000:28000], 16000), 300, delta=5)

    def test_no_audio_track_gives_silence_and_a_flag(self):
        path = write_clip(os.path.join(self.dir, "mute.mp4"), numbered_frames(6), fps=6)
        clip = decode_clip(path, 3, 32, sample_rate=8000)
        self.assertFalse(clip.audio_present)
        self.assertEqual(clip.audio.shape, (8000,))
        self.assertEqual(float(np.abs(clip.audio).max()), 0.0)

    def test_random_window_stays_inside_the_clip(self):
        rng = np.random.default_rng(0)
        for _ in range(20):
            start, length = choose_window(10.0, 2.0, "random", rng)
            self.assertTrue(0.0 <= start <= 8.0)
            self.assertEqual(length, 2.0)
        self.assertEqual(choose_window(1.5, 2.0), (0.0, 1.5))
        with self.assertRaisesRegex(ValueError, "mode.*'middle'"):
            choose_window(10.0, 2.0, "middle")

    def test_broken_files_raise_errors_naming_them(self):
        empty = os.path.join(self.dir, "empty.mp4")
        open(empty, "wb").close()
        with self.assertRaisesRegex(ClipDecodeError, "empty.mp4"):
            decode_clip(empty, 2, 32)
        text = os.path.join(self.dir, "notes.mp4")
        with open(text, "w") as f:
            f.write("not a video at all")
        with self.assertRaisesRegex(ClipDecodeError, "notes.mp4"):
            decode_clip(text, 2, 32)
        with self.assertRaises(FileNotFoundError):
            decode_clip(os.path.join(self.dir, "absent.mp4"), 2, 32)
        audio_only = os.path.join(self.dir, "audio_only.m4a")
        import av

        with av.open(audio_only, "w") as container:
            stream = container.add_stream("aac", rate=16000)
            frame = av.AudioFrame.from_ndarray(
                tone(440, 0.5, 16000)[None], format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            for packet in list(stream.encode(frame)) + list(stream.encode(None)):
                container.mux(packet)
        with self.assertRaisesRegex(ClipDecodeError, "audio_only.m4a: no video stream"):
            decode_clip(audio_only, 2, 32)

    def test_truncated_file_decodes_what_is_there_or_fails_clearly(self):
        path = write_clip(
            os.path.join(self.dir, "full.mp4"),
            numbered_frames(30),
            fps=10,
            audio=tone(440, 3.0, 16000),
        )
        data = pathlib.Path(path).read_bytes()
        truncated = os.path.join(self.dir, "truncated.mp4")
        with open(truncated, "wb") as f:
            f.write(data[: len(data) // 2])
        try:
            clip = decode_clip(truncated, 4, 32)
        except ClipDecodeError as error:
            self.assertIn("truncated.mp4", str(error))
        else:
            self.assertEqual(clip.frames.shape, (4, 32, 32, 3))

    def test_declared_length_limit(self):
        path = write_clip(
            os.path.join(self.dir, "long.mp4"), numbered_frames(20), fps=10
        )
        with self.assertRaisesRegex(ClipDecodeError, "long.mp4: declares 2 s"):
            decode_clip(path, 2, 32, max_duration=1.0)


def moving_square(count=16, size=64, seed=0):
    """A bright square crossing a noisy background."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 60, (count, size, size, 3)).astype(np.uint8)
    for i in range(count):
        x = 4 + 2 * i
        frames[i, 20:36, x : x + 16] = (230, 40, 40)
    return frames


class ReproducibleEncodingTest(TestCase):
    def test_the_same_frames_give_the_same_bytes_with_tensorflow_loaded(self):
        import tensorflow as tf

        tf.constant(1.0) + 1.0  # TensorFlow loaded and running in this process
        frames = moving_square()
        sound = tone(440, 1.0, 16000)
        contents = set()
        for i in range(8):
            path = os.path.join(self.get_temp_dir(), f"clip{i}.mp4")
            write_clip(path, frames, 16, audio=sound)
            contents.add(pathlib.Path(path).read_bytes())
        self.assertEqual(len(contents), 1, "write_clip gave different files")
