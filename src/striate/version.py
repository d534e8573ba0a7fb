"""The version of striate (one place: `striate.__version__` and `striate --version` read it)."""

__version__ = "0.2.0"
