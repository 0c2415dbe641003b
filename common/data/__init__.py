"""Data helpers shared by the applications.

`decode_and_resize` (TensorFlow) is imported on first use, so that decoding
worker processes that only need `common.data.video` (PyAV) or the reports
start without importing TensorFlow.
"""

from common.data.report import SkipReport

__all__ = ["SkipReport", "decode_and_resize"]


def __getattr__(name):
    if name == "decode_and_resize":
        from common.data.images import decode_and_resize

        return decode_and_resize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
