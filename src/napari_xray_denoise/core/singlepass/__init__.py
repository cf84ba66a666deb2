"""The single-pass (default) model family: its network (``network``), its denoiser
(``denoiser``), its simulated training pairs (``simdata``), the long supervised run that
makes the shipped model (``train``) and self-supervised fine-tuning on a user's scans
(``finetune``). Importing this package imports nothing (no TensorFlow)."""
