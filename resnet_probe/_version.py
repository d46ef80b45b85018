"""The installed version, in one place (the package root and the caches read it)."""

__version__ = "0.1.0"
