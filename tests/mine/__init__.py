"""Tests of the mine package."""
