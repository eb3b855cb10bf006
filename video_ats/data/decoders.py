"""Video decoders with one interface: frame indices in, uint8 RGB frames out.

Two backends, chosen by name with :func:`get_decoder`:

- ``"decord"`` (default): ``decord.VideoReader``; the frame count comes from its packet index.
- ``"pyav"``: PyAV. The frame count is the number of video packets found by demuxing the
  file, never the container header (which can say 0, e.g. in mkv / webm). A header that lists
  more frames than the file holds marks a truncated file, which is refused as decord refuses
  it. The packets are kept (compressed, small) and decoded in order up to the last wanted
  frame.

Both raise :class:`VideoDecodeError` (naming the file and the reason) for a missing file, an
empty file, a file that cannot be opened, a file without a video stream, or frames that cannot
be decoded; the dataset relies on that single exception type to skip or report broken videos.

Usage::

    with get_decoder("pyav")(path) as video:
        frames = video.get_frames([0, 4, 8])   # uint8 (3, H, W, 3)
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, Sequence

import numpy as np

# Used only when a container states no frame rate at all.
FALLBACK_FPS = 30.0
_DECORD_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")


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
    if not os.path.exists(path):
        raise VideoDecodeError(path, "missing file")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a folder, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


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
                raise VideoDecodeError(self.path, "no video stream") from None
            raise VideoDecodeError(self.path, f"cannot open: {_first_line(message)}") from None
        self.num_frames = len(self._reader)
        if self.num_frames < 1:
            raise VideoDecodeError(self.path, "no frames")
        self.fps = _usable_fps(self._reader.get_avg_fps())

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        indices = self._check_indices(indices)
        try:
            return self._reader.get_batch(indices).asnumpy()
        except Exception as error:
            raise VideoDecodeError(self.path, f"cannot decode: {_first_line(str(error))}") from None

    def close(self) -> None:
        self._reader = None


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
            if stream.frames > self.num_frames:
                # A header that promises more frames than the file holds: a cut-off download.
                raise VideoDecodeError(
                    self.path,
                    f"truncated: the header lists {stream.frames} frames, the file holds "
                    f"{self.num_frames}",
                )
            rate = stream.average_rate or stream.guessed_rate
            self.fps = _usable_fps(rate)
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
                        decoded[frame_index] = frame.to_ndarray(format="rgb24")
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


DECODERS = {"decord": DecordReader, "pyav": PyAVReader}


def get_decoder(name: str) -> Callable[..., VideoReader]:
    """The reader class for a backend name ("decord" or "pyav"); call it with a path."""
    if name not in DECODERS:
        raise ValueError(f"decoder {name!r} is not one of {sorted(DECODERS)}")
    return DECODERS[name]


def _first_line(message: str) -> str:
    """First line of a library error, without decord's ``[time] file.cc:line:`` prefix."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return _DECORD_LOG_PREFIX.sub("", lines[0]) if lines else "unknown error"
