"""napari-xray-denoise: self-supervised denoising and dual-energy fusion of 16-bit X-ray scans.

Importing this package is cheap: it never imports TensorFlow, napari or Qt.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
