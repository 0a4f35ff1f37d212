"""Tests of the vox_embedded package; run from the repository root with
``python3 -m unittest discover -s python/tests -t python``."""
