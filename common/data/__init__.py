"""Data helpers shared by the applications."""

from common.data.images import decode_and_resize
from common.data.report import SkipReport

__all__ = ["SkipReport", "decode_and_resize"]
