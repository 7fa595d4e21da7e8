"""Storage drivers, one module per backend; each passes :mod:`registry.storage.testing`.

Import the driver you need from its module (``registry.storage.drivers.filesystem``): backends
with optional dependencies are only imported when asked for.
"""
