"""The package version (layer L0; imports nothing)."""

__all__ = ["__version__"]

__version__ = "5.0.0.dev0"
