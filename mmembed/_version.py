"""The package version (read by setuptools and stamped into files that must change with it)."""

__version__ = "0.1.0"
