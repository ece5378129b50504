"""LLFF preparation scripts."""
