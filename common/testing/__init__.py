"""Test helpers shared by the suite's tests (and usable by downstream code)."""

from common.testing.test_case import LayerModel, TestCase

__all__ = ["LayerModel", "TestCase"]
