"""Spiking self-attention kinds, one file each; importing this package registers them all.

* ``ssa``    Spikformer (ICLR 2023): binary Q, K, V, no softmax, scale ``attn_scale`` (fixed or learned).
* ``dssa``   SpikingResformer (CVPR 2024): dual-spike attention with firing-rate scaling.
* ``a2os2a`` A2OS2A Spiking Transformer (CVPR 2025): binary Q, ReLU K, ternary V.
* ``ls_ssa`` LSFormer (arXiv 2605.13887), snnas interpretation: local dilated-window SSA.
* ``sdsa``   Spike-driven Transformer (NeurIPS 2023): masks and a token sum, no matmul.
* ``qk`` / ``qk_channel`` QKFormer (NeurIPS 2024): Q-K token / channel attention, Q gates K.
"""

from snnas.nas.models.attention import a2os2a, dssa, ls_ssa, qk, sdsa, ssa  # noqa: F401
