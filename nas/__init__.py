"""snnas.nas: the search side of snnas (architectures, model family, data, search)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("snnas")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
