"""ITER networks (nn.Modules only), registered into ``mmagic.registry.MODELS``."""
from .iter_net import ITERNet
from .lq_encoder import LQEncoder
from .swin import (RSTB, GatedMlp, SwinBlock, SwinLayers, WindowAttention, relative_position_index,
                   shift_attention_mask, window_partition, window_reverse)
from .token_nets import SwinTokenNet, TokenEvaluationNet, TokenRefinementNet
from .vqgan import Downsample, SwinVQGAN, Upsample, VectorQuantizer, VQGANDecoder, VQGANEncoder, VQGANResBlock

__all__ = [
    'ITERNet', 'LQEncoder', 'RSTB', 'GatedMlp', 'SwinBlock', 'SwinLayers', 'WindowAttention', 'relative_position_index',
    'shift_attention_mask', 'window_partition', 'window_reverse', 'SwinTokenNet', 'TokenEvaluationNet',
    'TokenRefinementNet', 'Downsample', 'SwinVQGAN', 'Upsample', 'VectorQuantizer', 'VQGANDecoder', 'VQGANEncoder',
    'VQGANResBlock'
]
