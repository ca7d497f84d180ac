"""Titanium: camera streaming for 3D printers."""

__version__ = "0.1.0"
