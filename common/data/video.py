"""Decoding video clips with sound through PyAV (FFmpeg).

`decode_clip(path, num_frames, frame_size, sample_rate, clip_seconds)` returns
frames sampled uniformly over a window of the clip (aspect-preserving resize +
centre crop) and the audio of the same window, mixed to mono and resampled.
With `clip_seconds` every clip gives the same shapes whatever its length: a
longer clip is cropped to the window, a shorter one has its frames spread over
the whole clip and its sound padded with silence after its end
(`Clip.audio_samples` says how many samples are real). Clips of
any container (mp4, avi, mkv, webm), resolution, frame rate and audio format
(AAC, MP3, Opus; 44.1/48 kHz; stereo) decode the same way; a clip without an
audio track gets silence and `audio_present=False`. Decoding stops as soon as
the window has been read, so a header that claims hours does not make it read
hours.
"""

import dataclasses
import math

import av
import numpy as np
from av.video.reformatter import VideoReformatter


class ClipDecodeError(ValueError):
    """A clip that cannot be used; the message names the file and the reason."""


@dataclasses.dataclass
class Clip:
    """A decoded window of a clip.

    Attributes:
        frames: uint8 `[num_frames, frame_size, frame_size, 3]` RGB.
        audio: float32 `[round(clip_seconds * sample_rate)]` mono samples in
            [-1, 1] (`[round(window * sample_rate)]` without `clip_seconds`).
        audio_present: whether the file has an audio track.
        start: window start in seconds.
        window: length in seconds of the part of the clip decoded (shorter
            than `clip_seconds` for a shorter clip).
        duration: the clip's duration in seconds as decoded or declared.
        audio_samples: how many samples of `audio` come from the clip; the
            rest is padding (silence).
        frames_decoded: how many of `frames` are distinct decoded frames (a
            clip shorter than declared, or cut short, repeats its last one).
    """

    frames: np.ndarray
    audio: np.ndarray
    audio_present: bool
    start: float
    window: float
    duration: float
    audio_samples: int = 0
    frames_decoded: int = 0


def _declared_duration(container, stream):
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _resize_and_crop(frame, size, reformatter=None):
    """An `av.VideoFrame` -> uint8 `[size, size, 3]`, short side scaled to size.

    Pass one `VideoReformatter` for all the frames of a clip: it keeps its
    scaling context, which `frame.reformat` would build anew for each frame
    (5x slower).
    """
    width, height = frame.width, frame.height
    scale = size / min(width, height)
    new_w = max(size, int(round(width * scale)))
    new_h = max(size, int(round(height * scale)))
    reformatter = reformatter or VideoReformatter()
    image = reformatter.reformat(
        frame, width=new_w, height=new_h, format="rgb24"
    ).to_ndarray()
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


class _AudioCollector:
    """Decoded audio frames -> one mono float32 signal at `sample_rate`.

    Frames are gathered as arrays and resampled in one call per run of frames
    with the same format, layout and rate: PyAV's resampler costs about as
    much per call as per sample, so resampling frame by frame (1,024 samples
    each) took as long as decoding the video.
    """

    def __init__(self, sample_rate):
        self.sample_rate = sample_rate
        self.runs = []  # [(format, layout, rate), [arrays]]

    def add(self, frame):
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if not self.runs or self.runs[-1][0] != key:
            self.runs.append((key, []))
        self.runs[-1][1].append(frame.to_ndarray())

    def mono(self):
        pieces = []
        for (fmt, layout, rate), arrays in self.runs:
            whole = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(np.concatenate(arrays, axis=1)),
                format=fmt,
                layout=layout,
            )
            whole.sample_rate = rate
            resampler = av.AudioResampler(
                format="flt", layout="mono", rate=self.sample_rate
            )
            for frame in [*resampler.resample(whole), *resampler.resample(None)]:
                pieces.append(frame.to_ndarray().reshape(-1))
        if not pieces:
            return np.zeros(0, np.float32)
        return np.concatenate(pieces).astype(np.float32)


def choose_window(duration, clip_seconds, mode="center", rng=None):
    """`(start, length)` in seconds of the window to decode.

    `clip_seconds=None` takes the whole clip; `mode` is `"center"` (evaluation)
    or `"random"` (training).
    """
    if clip_seconds is None or clip_seconds >= duration:
        return 0.0, float(duration)
    if mode == "random":
        rng = rng or np.random.default_rng()
        return float(rng.uniform(0.0, duration - clip_seconds)), float(clip_seconds)
    if mode != "center":
        raise ValueError(f"`mode` must be 'center' or 'random'; received {mode!r}.")
    return (duration - clip_seconds) / 2.0, float(clip_seconds)


def sample_times(start, window, num_frames):
    """Centres of `num_frames` equal slices of the window."""
    step = window / num_frames
    return start + step * (np.arange(num_frames) + 0.5)


class _FrameSampler:
    """Keeps the decoded frames nearest to the target times of a window.

    With `targets` (a known duration) each frame that covers one or more
    targets is resized once and kept for them; decoding can stop when every
    target is covered. Without (an unknown duration) every frame is kept with
    its time, and the picks are made once the clip's length is known.
    """

    def __init__(self, targets, num_frames, frame_size, frame_rate):
        self.targets = targets
        self.num_frames = num_frames
        self.frame_size = frame_size
        # A frame that starts within half a frame before a target covers it.
        self.slack = 0.5 / frame_rate
        self.frame_rate = frame_rate
        self.reformatter = VideoReformatter()
        self.frames = [None] * num_frames
        self.kept = []  # (time, frame) for clips of unknown duration
        self.next_target = 0
        self.last_frame = None

    def _image(self, frame):
        return _resize_and_crop(frame, self.frame_size, self.reformatter)

    @property
    def decoded_any(self):
        return self.last_frame is not None or bool(self.kept)

    def add(self, frame):
        """Takes one decoded frame; returns whether every target is covered."""
        if frame.time is None:
            return False
        if self.targets is None:
            self.kept.append((frame.time, self._image(frame)))
            return False
        covered = self.next_target
        while covered < self.num_frames and frame.time >= (
            self.targets[covered] - self.slack
        ):
            covered += 1
        if covered > self.next_target:
            image = self._image(frame)
            for index in range(self.next_target, covered):
                self.frames[index] = image
            self.next_target = covered
        self.last_frame = frame
        return self.next_target >= self.num_frames

    def picked(self, path, clip_seconds, mode, rng):
        """`(frames, distinct, window or None)`: for a clip of unknown
        duration, the `(start, window, duration)` found from its frames."""
        if self.targets is None:
            if not self.kept:
                raise ClipDecodeError(f"{path}: no decodable video frame.")
            duration = self.kept[-1][0] + 1.0 / self.frame_rate
            start, window = choose_window(duration, clip_seconds, mode, rng)
            times = np.array([t for t, _ in self.kept])
            # The same rule as with targets: the first frame that starts at
            # most half a frame before the target.
            targets = sample_times(start, window, self.num_frames)
            picks = np.searchsorted(times, targets - self.slack)
            picks = np.minimum(picks, len(self.kept) - 1)
            frames = [self.kept[i][1] for i in picks]
            return frames, len(set(picks.tolist())), (start, window, duration)
        decoded = [f for f in self.frames if f is not None]
        if not decoded and self.last_frame is None:
            raise ClipDecodeError(f"{path}: no decodable video frame.")
        # A clip shorter than declared: repeat the last frame decoded.
        fallback = decoded[-1] if decoded else self._image(self.last_frame)
        distinct = len({id(f) for f in decoded}) or 1
        return [f if f is not None else fallback for f in self.frames], distinct, None


def _open(path):
    try:
        return av.open(str(path))
    except FileNotFoundError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ClipDecodeError(f"{path}: cannot open as a video ({error}).") from error


def _checked_duration(path, container, video, max_duration):
    """The declared duration in seconds (`None` when unknown or not positive);
    `ClipDecodeError` when it is over `max_duration`."""
    duration = _declared_duration(container, video)
    if duration is not None and max_duration is not None and duration > max_duration:
        raise ClipDecodeError(
            f"{path}: declares {duration:.0f} s, over the {max_duration:.0f} s limit."
        )
    return duration if duration is not None and duration > 0 else None


def _read_streams(path, container, video, audio, sampler, sound, end):
    """Demuxes until the frames are sampled and the audio passed `end`;
    returns the time of the first audio frame (or `None`). A corrupt tail
    keeps what decoded before it."""
    audio_start = None
    video_done = False
    audio_done = audio is None
    streams = [video] + ([audio] if audio is not None else [])
    try:
        for packet in container.demux(streams):
            if packet.stream.type == "video" and not video_done:
                for frame in packet.decode():
                    video_done = sampler.add(frame) or video_done
            elif packet.stream.type == "audio" and not audio_done:
                for frame in packet.decode():
                    if frame.time is not None and audio_start is None:
                        audio_start = frame.time
                    sound.add(frame)
                    if frame.time is not None and frame.time > end:
                        audio_done = True
            if video_done and audio_done:
                break
    except av.error.FFmpegError as error:
        if not sampler.decoded_any:
            raise ClipDecodeError(f"{path}: corrupt video data ({error}).") from error
    return audio_start


def _window_audio(signal, audio_start, start, window, clip_seconds, sample_rate):
    """`(waveform, real samples)`: the window's part of `signal` (which starts
    at `audio_start` s), padded with silence to `clip_seconds` (or the
    window) and clipped to [-1, 1]."""
    content = int(round(window * sample_rate))
    samples = int(round(clip_seconds * sample_rate)) if clip_seconds else content
    waveform = np.zeros(samples, dtype=np.float32)
    real = 0
    if len(signal):
        offset = int(round((start - (audio_start or 0.0)) * sample_rate))
        piece = signal[max(offset, 0) : max(offset, 0) + content]
        at = max(-offset, 0)
        piece = piece[: max(0, min(content, samples) - at)]
        waveform[at : at + len(piece)] = piece
        real = at + len(piece)
    np.clip(waveform, -1.0, 1.0, out=waveform)
    return waveform, real


def decode_clip(
    path,
    num_frames,
    frame_size,
    sample_rate=16000,
    clip_seconds=None,
    mode="center",
    rng=None,
    max_duration=None,
):
    """Decodes `num_frames` frames and the matching audio of one clip.

    Args:
        path: video file.
        num_frames: frames sampled uniformly over the window.
        frame_size: side of the square frames.
        sample_rate: output audio rate in Hz (mono).
        clip_seconds: window length; every clip's audio has
            `round(clip_seconds * sample_rate)` samples (a shorter clip is
            padded with silence). `None` = the whole clip, whatever its length.
        mode: `"center"` or `"random"` window placement.
        rng: NumPy generator for `"random"`.
        max_duration: refuse clips declaring more seconds than this.

    Returns:
        A `Clip`.

    Raises:
        FileNotFoundError: the file does not exist.
        ClipDecodeError: unreadable, no video stream, no decodable frame, or
            too long; the message names the file.
    """
    with _open(path) as container:
        if not container.streams.video:
            raise ClipDecodeError(f"{path}: no video stream.")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        duration = _checked_duration(path, container, video, max_duration)
        start, window = (
            choose_window(duration, clip_seconds, mode, rng)
            if duration
            else (0.0, None)
        )
        targets = sample_times(start, window, num_frames) if window else None
        frame_rate = float(video.average_rate or 25)
        sampler = _FrameSampler(targets, num_frames, frame_size, frame_rate)
        sound = _AudioCollector(sample_rate)
        end = start + window if window else math.inf
        audio_start = _read_streams(path, container, video, audio, sampler, sound, end)
        frames, distinct, found = sampler.picked(path, clip_seconds, mode, rng)
        if found is not None:
            start, window, duration = found
        waveform, real = _window_audio(
            sound.mono(), audio_start, start, window, clip_seconds, sample_rate
        )
        return Clip(
            frames=np.stack(frames).astype(np.uint8),
            audio=waveform,
            audio_present=audio is not None,
            start=float(start),
            window=float(window),
            duration=float(duration),
            audio_samples=int(real),
            frames_decoded=int(distinct),
        )


# Reproducible encoding (see `write_clip`).
X264_OPTIONS = {"x264-params": "mbtree=0"}


def write_clip(
    path,
    frames,
    fps,
    audio=None,
    sample_rate=16000,
    channels=1,
    video_codec="libx264",
    audio_codec="aac",
    faststart=False,
):
    """Writes uint8 `[T, H, W, 3]` frames (and float audio) to a video file.

    `audio` is `[samples]` (mono, duplicated to `channels`) or
    `[channels, samples]` in [-1, 1]; `None` writes no audio track. H and W
    must be even for H.264's yuv420p. `faststart` puts an mp4's index before
    its media data (as files meant for streaming have it).

    The same frames and sound give the same bytes in any process: x264's
    macroblock-tree rate control is turned off, because its float arithmetic
    gives different bitstreams run to run once TensorFlow is loaded in the
    process (so generated datasets, and runs trained on them, would differ).
    """
    frames = np.asarray(frames, dtype=np.uint8)
    layout = {1: "mono", 2: "stereo"}[channels]
    options = {"movflags": "faststart"} if faststart else {}
    codec_options = X264_OPTIONS if video_codec == "libx264" else {}
    with av.open(str(path), mode="w", options=options) as container:
        video = container.add_stream(
            video_codec, rate=int(fps), options=dict(codec_options)
        )
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        stream = None
        if audio is not None:
            stream = container.add_stream(audio_codec, rate=int(sample_rate))
            stream.layout = layout
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim == 1:
                audio = np.repeat(audio[None], channels, axis=0)
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        if stream is not None:
            hop = 1024
            for start in range(0, audio.shape[1], hop):
                chunk = np.ascontiguousarray(audio[:, start : start + hop])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = int(sample_rate)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return str(path)


def decode_with(path, settings, mode="center", rng=None):
    """`decode_clip` with the decoding a model was trained with: `settings`
    holds `num_frames`, `frame_size`, `sample_rate`, `clip_seconds` and,
    optionally, `max_duration` (a prepared folder's settings, or an exported
    model's `decoding.json`)."""
    return decode_clip(
        path,
        settings["num_frames"],
        settings["frame_size"],
        sample_rate=settings["sample_rate"],
        clip_seconds=settings["clip_seconds"],
        mode=mode,
        rng=rng,
        max_duration=settings.get("max_duration"),
    )
