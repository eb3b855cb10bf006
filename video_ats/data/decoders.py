"""Video decoders with one interface: frame indices in, uint8 RGB frames out.

Backends, chosen by name with :func:`get_decoder` (the names are :data:`DECODER_NAMES`, the
one vocabulary the config and the tools use):

- ``"decord"`` (default): ``decord.VideoReader``; the frame count comes from its packet index.
- ``"pyav"``: PyAV. The frame count is the number of video packets found by demuxing the
  file, never the container header (which can say 0, e.g. in mkv / webm). The packets are
  kept (compressed, small) and decoded in order up to the last wanted frame.
- ``"auto"``: decord, and PyAV for a video decord cannot open or decode (an AV1 stream, which
  decord's FFmpeg cannot decode, for instance), decided per video.

Both backends give the same frames: a video whose container carries a display rotation (phone
videos, 90 / 180 / 270 degrees) comes out rotated for display, as decord does it. Both refuse a
truncated file: a header that lists more frames than the file holds, or, for containers whose
header has no frame count (mkv, webm), video packets that end well before the duration the
header states (a download cut off midway, whose last frame would decode as garbage).

Every backend raises :class:`VideoDecodeError` (naming the file and the reason) for a missing
file, a folder, an empty file, a file that cannot be opened, a file without a video stream, a
codec the backend cannot decode, a truncated file, or frames that cannot be decoded; the
dataset relies on that single exception type to skip or report broken videos.

Usage::

    with get_decoder("pyav")(path) as video:
        frames = video.get_frames([0, 4, 8])   # uint8 (3, H, W, 3)
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

# Used only when a container states no frame rate at all.
FALLBACK_FPS = 30.0
# Video packets may end this much before the stated duration (frames) before the file counts as
# truncated: containers round durations, and an audio track can outlast the video a little.
TRUNCATION_TOLERANCE_FRAMES = 2
TRUNCATION_TOLERANCE_FRACTION = 0.05
_DECORD_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")
# Reasons a reader gives before it has looked inside the file; "auto" does not retry them.
MISSING, FOLDER, EMPTY = "missing file", "is a folder, not a video file", "empty file (0 bytes)"


class VideoDecodeError(RuntimeError):
    """A video that cannot be used. ``path`` and ``reason`` are kept for reports."""

    def __init__(self, path, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class VideoReader:
    """An open video. Subclasses set ``path``, ``num_frames`` and ``fps``.

    num_frames: frames the video really holds (>= 1).
    fps: average frame rate (FALLBACK_FPS when the file states none).
    """

    path: str
    num_frames: int
    fps: float

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` (each in [0, num_frames), repeats allowed) as uint8 RGB
        (len(indices), H, W, 3), in the order asked."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _check_indices(self, indices: Sequence[int]) -> list:
        indices = [int(index) for index in indices]
        if not indices:
            raise ValueError(f"{self.path}: no frame indices asked for")
        bad = [index for index in indices if not 0 <= index < self.num_frames]
        if bad:
            raise IndexError(
                f"{self.path}: frame indices {bad} outside [0, {self.num_frames}) frames"
            )
        return indices


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise VideoDecodeError(path, FOLDER)
    if not os.path.exists(path):
        raise VideoDecodeError(path, MISSING)
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, EMPTY)


class ContainerFacts(NamedTuple):
    """What a container's header says about its first video stream (nothing is decoded).

    codec: the stream's codec name (h264, vp9, av1, ...).
    header_frames: the frame count the header lists, 0 when it lists none (mkv, webm).
    duration: seconds the header states for the video (its own duration, else the
        container's), None when it states none.
    """

    codec: str
    header_frames: int
    duration: Optional[float]


def _duration_tag(text: str) -> Optional[float]:
    """Matroska's per-track ``DURATION`` tag, ``HH:MM:SS.nnnnnnnnn``, in seconds."""
    match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", text.strip())
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _stream_facts(container, stream) -> ContainerFacts:
    """ContainerFacts of a PyAV video stream of an open container."""
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif stream.metadata.get("DURATION"):
        duration = _duration_tag(stream.metadata["DURATION"])
    elif container.duration:
        duration = container.duration / 1_000_000       # AV_TIME_BASE
    codec = stream.codec_context.codec
    return ContainerFacts(getattr(codec, "canonical_name", None) or codec.name, int(stream.frames or 0), duration)


def probe(path) -> Optional[ContainerFacts]:
    """The header facts of a file's first video stream, read with PyAV; None when PyAV cannot
    open the file or it has no video stream."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            if not container.streams.video:
                return None
            return _stream_facts(container, container.streams.video[0])
    except Exception:  # noqa: BLE001 - any failure means "no facts"; the reader reports its own
        return None


def _check_complete(path: str, num_frames: int, fps: float, facts: Optional[ContainerFacts]) -> None:
    """Refuse a truncated file: fewer frames than the header lists, or, when it lists none,
    video packets that end well before the duration it states."""
    if facts is None:
        return
    if facts.header_frames > num_frames:
        # A header that promises more frames than the file holds: a cut-off download.
        raise VideoDecodeError(
            path, f"truncated: the header lists {facts.header_frames} frames, the file holds {num_frames}")
    if facts.header_frames == 0 and facts.duration:
        expected = facts.duration * fps
        if num_frames < expected - max(TRUNCATION_TOLERANCE_FRAMES, TRUNCATION_TOLERANCE_FRACTION * expected):
            raise VideoDecodeError(
                path, f"truncated: the header states {facts.duration:.2f} s ({expected:.0f} frames at {fps:g} fps), "
                      f"the file holds {num_frames} frames (a download cut off midway?)")


def _is_iso_media(path: str) -> bool:
    """mp4 / mov / m4v (ISO base media): the box ``ftyp`` at byte 4."""
    with open(path, "rb") as handle:
        return handle.read(8)[4:8] == b"ftyp"


def _display_rotation(frame) -> int:
    """Quarter turns (counter-clockwise) that display the frame upright: its display matrix."""
    rotation = getattr(frame, "rotation", 0) or 0
    return (int(round(rotation / 90)) % 4) if rotation % 90 == 0 else 0


def _usable_fps(value) -> float:
    try:
        fps = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return FALLBACK_FPS
    return fps if math.isfinite(fps) and fps > 0 else FALLBACK_FPS


class DecordReader(VideoReader):
    """decord backend; ``num_threads`` decoding threads (1 suits DataLoader workers)."""

    def __init__(self, path, num_threads: int = 1):
        import decord

        self.path = os.fspath(path)
        _check_file(self.path)
        try:
            self._reader = decord.VideoReader(self.path, num_threads=num_threads)
        except Exception as error:  # decord raises bare RuntimeError / DECORDError
            message = str(error)
            if "cannot find video stream" in message:
                # decord says this too for a video stream its FFmpeg has no decoder for (AV1).
                facts = probe(self.path)
                if facts is not None:
                    raise VideoDecodeError(
                        self.path, f"decord cannot decode its {facts.codec} video stream (no {facts.codec} decoder "
                                   f"in decord's FFmpeg); use the pyav decoder, or auto (decord, then PyAV per "
                                   f"video)") from None
                raise VideoDecodeError(self.path, "no video stream") from None
            raise VideoDecodeError(self.path, f"cannot open: {_first_line(message)}") from None
        self.num_frames = len(self._reader)
        if self.num_frames < 1:
            raise VideoDecodeError(self.path, "no frames")
        self.fps = _usable_fps(self._reader.get_avg_fps())
        # decord itself refuses a truncated mp4 / mov; only the containers without a frame count
        # (Matroska / WebM, AVI, FLV) need the header's duration, read with PyAV.
        if not _is_iso_media(self.path):
            _check_complete(self.path, self.num_frames, self.fps, probe(self.path))

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        indices = self._check_indices(indices)
        try:
            frames = self._reader.get_batch(indices).asnumpy()
        except Exception as error:
            message = _first_line(str(error))
            if "DECORDArrayCopyFromTo" in message:
                raise VideoDecodeError(self.path, _DECORD_ROTATION_BUG) from None
            raise VideoDecodeError(self.path, f"cannot decode: {message}") from None
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoDecodeError(self.path, _DECORD_ROTATION_BUG)
        return frames

    def close(self) -> None:
        self._reader = None


# decord 0.6 returns frames of the wrong size for some rotated videos (a display rotation with
# a frame height such as 16 or 48); its get_batch then fails copying them.
_DECORD_ROTATION_BUG = ("decord returned frames of the wrong size (a decord bug with some rotated videos); use the "
                        "pyav decoder, or auto (decord, then PyAV per video)")


class PyAVReader(VideoReader):
    """PyAV backend; ``num_threads`` decoding threads (1 suits DataLoader workers)."""

    def __init__(self, path, num_threads: int = 1):
        import av

        self.path = os.fspath(path)
        _check_file(self.path)
        try:
            self._container = av.open(self.path)
        except Exception as error:
            raise VideoDecodeError(self.path, f"cannot open: {_first_line(str(error))}") from None
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(self.path, "no video stream")
            stream = self._container.streams.video[0]
            stream.codec_context.thread_count = num_threads
            if num_threads != 1:
                stream.thread_type = "AUTO"
            # Demuxing reads the packets without decoding them: their count is the real frame
            # count, whatever the header says. The last, empty packet flushes the decoder.
            self._packets = list(self._container.demux(stream))
            self.num_frames = sum(packet.size > 0 for packet in self._packets)
            rate = stream.average_rate or stream.guessed_rate
            self.fps = _usable_fps(rate)
            _check_complete(self.path, self.num_frames, self.fps, _stream_facts(self._container, stream))
            self._stream = stream
        except VideoDecodeError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise VideoDecodeError(self.path, f"cannot read: {_first_line(str(error))}") from None
        if self.num_frames < 1:
            self.close()
            raise VideoDecodeError(self.path, "no frames")

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        indices = self._check_indices(indices)
        wanted = set(indices)
        last = max(wanted)
        decoded = {}
        frame_index = -1
        # A previous call may have stopped mid-stream with frames still buffered: start over.
        self._stream.codec_context.flush_buffers()
        try:
            for packet in self._packets:
                for frame in self._stream.decode(packet):
                    frame_index += 1
                    if frame_index in wanted:
                        # Upright as displayed, exactly as decord turns it (np.rot90 is counter-clockwise).
                        image = frame.to_ndarray(format="rgb24")
                        decoded[frame_index] = np.rot90(image, _display_rotation(frame))
                if frame_index >= last:
                    break
        except Exception as error:
            raise VideoDecodeError(
                self.path, f"cannot decode frame {frame_index + 1}: {_first_line(str(error))}"
            ) from None
        if frame_index < last:
            raise VideoDecodeError(
                self.path,
                f"stream ended after {frame_index + 1} frames, {self.num_frames} packets",
            )
        return np.stack([decoded[index] for index in indices])

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.close()


class AutoReader(VideoReader):
    """decord, and PyAV for a video decord cannot open or decode (decided per video).

    Both give the same frames, so which one read a video does not change the clip. When both
    fail, the error gives PyAV's reason and decord's.
    """

    def __init__(self, path, num_threads: int = 1):
        self.path, self._num_threads = os.fspath(path), num_threads
        try:
            self._reader = DecordReader(self.path, num_threads)
        except VideoDecodeError as error:
            if error.reason in (MISSING, FOLDER, EMPTY):
                raise
            self._reader = self._pyav(error)
        self.num_frames, self.fps = self._reader.num_frames, self._reader.fps

    def _pyav(self, decord_error: VideoDecodeError) -> VideoReader:
        try:
            return PyAVReader(self.path, self._num_threads)
        except VideoDecodeError as error:
            both = error.reason if error.reason == decord_error.reason else \
                f"{error.reason} (decord: {decord_error.reason})"
            raise VideoDecodeError(self.path, both) from None

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        try:
            return self._reader.get_frames(indices)
        except VideoDecodeError as error:
            if not isinstance(self._reader, DecordReader):
                raise
            self._reader.close()
            self._reader = self._pyav(error)
            return self._reader.get_frames(indices)

    def close(self) -> None:
        reader, self._reader = getattr(self, "_reader", None), None
        if reader is not None:
            reader.close()


DECODERS = {"decord": DecordReader, "pyav": PyAVReader, "auto": AutoReader}
# The one vocabulary of decoder names: DATA.DECODER and the tools' --decoder take it from here.
DECODER_NAMES = tuple(DECODERS)
# The libraries behind them ("auto" picks one of these per video).
DECODER_BACKENDS = ("decord", "pyav")


def get_decoder(name: str) -> Callable[..., VideoReader]:
    """The reader class for a backend name (one of DECODER_NAMES); call it with a path."""
    if name not in DECODERS:
        raise ValueError(f"decoder {name!r} is not one of {sorted(DECODERS)}")
    return DECODERS[name]


def _first_line(message: str) -> str:
    """First line of a library error, without decord's ``[time] file.cc:line:`` prefix."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return _DECORD_LOG_PREFIX.sub("", lines[0]) if lines else "unknown error"
