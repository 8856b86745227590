"""LQ encoder, token evaluation/refinement nets and ITERNet (docs/faithfulness.md#lq-encoder, #token-networks)."""

import pytest
import torch
import torch.nn.functional as F

from iter_mm.models.archs import ITERNet, LQEncoder, TokenEvaluationNet, TokenRefinementNet
from iter_mm.models.archs.lq_encoder import LQResBlock

N_CODES = 64
TINY_NET = dict(mid_dim=32, num_rstb=1, depth=2, window_size=4, num_heads=4)
TINY_LQ = dict(
    base_channels=16,
    feat_dim=32,
    codebook_size=N_CODES,
    swin_dim=32,
    swin_num_rstb=1,
    swin_depth=2,
    swin_window=4,
    swin_heads=4,
)
TINY_VQ = dict(
    type='SwinVQGAN',
    nf=16,
    ch_mult=(1, 1, 2, 2),
    num_res_blocks=1,
    codebook_size=N_CODES,
    embed_dim=16,
    swin_dim=32,
    swin_window=4,
    swin_depth=2,
    swin_heads=4,
)


def count(m):
    return sum(p.numel() for p in m.parameters())


def tiny_iter(scale=4):
    return ITERNet(
        scale=scale,
        vqgan=TINY_VQ,
        lq_encoder=dict(type='LQEncoder', **TINY_LQ),
        evaluator=dict(type='TokenEvaluationNet', codebook_size=N_CODES, **TINY_NET),
        refiner=dict(type='TokenRefinementNet', codebook_size=N_CODES, **TINY_NET),
    )


def test_full_size_parameter_counts():
    with torch.device('meta'):  # shapes only: no memory, no init time
        assert count(LQEncoder(scale=4)) == 4_140_512
        assert count(LQEncoder(scale=2)) == 6_814_432
        phi_e, phi_r = TokenEvaluationNet(), TokenRefinementNet()
    assert count(phi_e) == 25_972_930 and count(phi_r) == 26_104_256
    assert phi_r.code_emb.weight.shape == (256, 513, 1, 1) and phi_e.conv_out[2].weight.shape == (2, 256, 1, 1)


def test_lq_encoder_layout_and_shapes():
    enc = LQEncoder(scale=2, **TINY_LQ)
    keys = enc.state_dict()
    assert 'model.1.1.conv.0.norm.weight' in keys and 'model.2.2.conv.5.weight' in keys
    assert keys['model.2.0.weight'].shape == (64, 32, 3, 3)  # second stride-2 stage
    assert 'model.4.swin_blks.0.conv.weight' in keys and keys['model.5.weight'].shape == (N_CODES, 32, 1, 1)
    assert enc.pad_multiple == 16
    assert enc(torch.rand(2, 3, 16, 32)).shape == (2, N_CODES, 4, 8)
    x4 = LQEncoder(scale=4, **TINY_LQ)
    assert x4.pad_multiple == 8 and x4(torch.rand(1, 3, 8, 16)).shape == (1, N_CODES, 4, 8)
    with pytest.raises(ValueError, match='multiples of 8'):
        x4(torch.rand(1, 3, 12, 16))
    with pytest.raises(ValueError, match='scale'):
        LQEncoder(scale=3)


def test_lq_resblock_uses_leaky_relu():
    torch.manual_seed(0)
    blk = LQResBlock(32)
    x = torch.randn(1, 32, 5, 5)
    c = blk.conv
    h = F.conv2d(
        F.leaky_relu(F.group_norm(x, 32, c[0].norm.weight, c[0].norm.bias, 1e-6), 0.2),
        c[2].weight,
        c[2].bias,
        padding=1,
    )
    h = F.conv2d(
        F.leaky_relu(F.group_norm(h, 32, c[3].norm.weight, c[3].norm.bias, 1e-6), 0.2),
        c[5].weight,
        c[5].bias,
        padding=1,
    )
    torch.testing.assert_close(blk(x), x + h)


def onehot(tokens, n):
    return F.one_hot(tokens, n).permute(0, 3, 1, 2).float()


def test_embedding_lookup_equals_conv_on_onehot():
    torch.manual_seed(0)
    net = TokenRefinementNet(codebook_size=N_CODES, **TINY_NET)
    tokens = torch.randint(0, N_CODES, (2, 4, 8))
    keep = (torch.rand(2, 4, 8) > 0.5).float()
    x = torch.cat([onehot(tokens, N_CODES) * keep[:, None], (1 - keep)[:, None]], 1)  # 513-channel input
    ref = net.code_emb(x)
    assert torch.equal(net.embed(tokens, visible=keep, flag=1 - keep), ref)
    assert torch.equal(
        net.embed(tokens), net.code_emb(torch.cat([onehot(tokens, N_CODES), torch.zeros(2, 1, 4, 8)], 1))
    )


def test_embedding_lookup_rounds_like_conv_under_autocast():
    torch.manual_seed(3)
    net = TokenRefinementNet(codebook_size=N_CODES, **TINY_NET)
    tokens = torch.randint(0, N_CODES, (1, 4, 4))
    keep = (torch.rand(1, 4, 4) > 0.5).float()
    x = torch.cat([onehot(tokens, N_CODES), (1 - keep)[:, None]], 1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ref, out = net.code_emb(x), net.embed(tokens, flag=1 - keep)
    assert ref.dtype == out.dtype == torch.bfloat16 and torch.equal(out, ref)


def test_refiner_forward_matches_reference_inputs():
    torch.manual_seed(1)
    net = TokenRefinementNet(codebook_size=N_CODES, **TINY_NET).eval()
    s_l, s = torch.randint(0, N_CODES, (2, 2, 4, 8))
    flag = (torch.rand(2, 4, 8) > 0.7).float()
    keep = (torch.rand(2, 4, 8) > 0.4).float()
    x0 = torch.cat([onehot(s_l, N_CODES), flag[:, None]], 1)  # docs/faithfulness.md#token-networks: S_l + flag
    x1 = torch.cat([onehot(s, N_CODES) * keep[:, None], (1 - keep)[:, None]], 1)
    ref = net.conv_out(net.swin_layers(net.combine(torch.cat([net.code_emb(x0), net.code_emb(x1)], 1))))
    out = net(s_l, flag, s, keep)
    assert out.shape == (2, N_CODES, 4, 8)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(net(s_l.unsqueeze(1), flag, s.unsqueeze(1), keep.bool().unsqueeze(1)), out)


def test_evaluator_forward_order_of_inputs():
    torch.manual_seed(2)
    net = TokenEvaluationNet(codebook_size=N_CODES, **TINY_NET).eval()
    cand, cond = torch.randint(0, N_CODES, (2, 1, 8, 4))
    ref = net.conv_out(
        net.swin_layers(
            net.combine(torch.cat([net.code_emb(onehot(cand, N_CODES)), net.code_emb(onehot(cond, N_CODES))], 1))
        )
    )
    out = net(cand, cond)
    assert out.shape == (1, 2, 8, 4)
    torch.testing.assert_close(out, ref)
    assert not torch.allclose(net(cond, cand), out)  # x0 = candidate, x1 = condition
    with pytest.raises(TypeError, match='integer'):
        net(cand.float(), cond)


def test_iternet_children_and_pipeline_shapes():
    torch.manual_seed(0)
    net = tiny_iter(4).eval()
    assert [n for n, _ in net.named_children()] == ['vqgan', 'lq_encoder', 'evaluator', 'refiner']
    assert net.scale == 4 and net.lq_encoder.scale == 4 and net.lq_pad_multiple == 8
    lq = torch.rand(1, 3, 8, 16)
    with torch.no_grad():
        s_l = net.lq_encoder(lq).argmax(1)
        assert s_l.shape == (1, 4, 8)
        good = net.evaluator(s_l, s_l)
        keep = (good.softmax(1)[:, 1] >= 0.5).float()
        logits = net.refiner(s_l, 1 - keep, s_l, keep)
        img = net.vqgan.decode_indices(logits.argmax(1))
    assert good.shape == (1, 2, 4, 8) and logits.shape == (1, N_CODES, 4, 8) and img.shape == (1, 3, 32, 64)
    assert tiny_iter(2).lq_pad_multiple == 16


def test_iternet_default_is_released_geometry_and_config_errors():
    with pytest.raises(ValueError, match='conflicts'):
        ITERNet(scale=2, lq_encoder=dict(type='LQEncoder', scale=4))
    with pytest.raises(ValueError, match='codes'):
        ITERNet(
            scale=4,
            vqgan=TINY_VQ,
            lq_encoder=dict(type='LQEncoder', **dict(TINY_LQ, codebook_size=32)),
            evaluator=dict(type='TokenEvaluationNet', codebook_size=N_CODES, **TINY_NET),
            refiner=dict(type='TokenRefinementNet', codebook_size=N_CODES, **TINY_NET),
        )
    with pytest.raises(TypeError, match='config dict'):
        ITERNet(vqgan='SwinVQGAN')
