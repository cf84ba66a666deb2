"""napari adapters: reader, writer, sample data, layer data, session models, dock widgets.

The only part of the package that talks to napari. Never imports TensorFlow: core work
runs in the worker process (``.._worker``).
"""
