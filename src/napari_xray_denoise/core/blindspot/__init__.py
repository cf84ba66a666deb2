"""The blind-spot model family: its network and losses (``network``), its denoiser
(``denoiser``; also the base class of the AMSSD denoiser), the noise fits and the
posterior mean it uses (``noisefit``) and its training (``train``). Importing this
package imports nothing (no TensorFlow)."""
