"""ITER networks (nn.Modules only), registered into ``mmagic.registry.MODELS`` (a name table of their own
without MMagic).

Names resolve lazily (PEP 562), so the pure-torch ``swin`` module imports without MMagic.
"""

import importlib

_WHERE = dict(
    ITERNet='iter_net',
    LQEncoder='lq_encoder',
    RSTB='swin',
    GatedMlp='swin',
    SwinBlock='swin',
    SwinLayers='swin',
    WindowAttention='swin',
    relative_position_index='swin',
    shift_attention_mask='swin',
    window_partition='swin',
    window_reverse='swin',
    SwinTokenNet='token_nets',
    TokenEvaluationNet='token_nets',
    TokenRefinementNet='token_nets',
    Downsample='vqgan',
    SwinVQGAN='vqgan',
    Upsample='vqgan',
    VectorQuantizer='vqgan',
    VQGANDecoder='vqgan',
    VQGANEncoder='vqgan',
    VQGANResBlock='vqgan',
)
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f'{__name__}.{_WHERE[name]}'), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
