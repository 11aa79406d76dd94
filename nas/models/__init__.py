"""The spiking vision transformer family: parts registries, ``build_model`` and the zoo."""

from nas.models.network import SpikingTransformer, build_model
from nas.models.registries import ATTENTION, DOWNSAMPLE, MLPS, NEURONS, STEMS, SURROGATES

__all__ = ["ATTENTION", "DOWNSAMPLE", "MLPS", "NEURONS", "STEMS", "SURROGATES", "SpikingTransformer", "build_model"]
