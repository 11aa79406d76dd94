"""The spiking vision transformer family: ``ArchConfig``, the parts registries, ``build_model`` and the zoo.

Importing this package imports every part's module (attention kinds, MLPs, downsampling, stems;
neurons with the layers), which registers them.
"""

from snnas.nas.models import attention, mlp, pooling, stems  # noqa: F401 - importing them registers the parts
from snnas.nas.models.network import SpikingTransformer, build_model
from snnas.nas.models.registries import (ATTENTION, DOWNSAMPLE, MLPS, NEURONS, STEMS, SURROGATES,
                                         check_parts)

__all__ = ["ATTENTION", "DOWNSAMPLE", "MLPS", "NEURONS", "STEMS", "SURROGATES", "SpikingTransformer", "build_model",
           "check_parts"]
