"""The AMSSD model family (two-stage network, loss, optimizer and denoiser: ``network``)
and its training (``train``). Importing this package imports nothing (no TensorFlow)."""
