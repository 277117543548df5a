"""hostd: converge a balenaOS-style host to its config.json."""

__version__ = "0.1.0"
