"""Losses: class-balanced CE (Eq. 9) by hand and under a split batch, SSIM vs pyiqa, LPIPS offline loading."""

import math

import pytest
import torch
import torch.nn.functional as F

from iter_mm.models.losses import ClassBalancedCELoss, LPIPSLoss, SSIMLoss, class_balanced_weights
from iter_mm.models.losses import class_balanced_ce as cbce
from iter_mm.models.losses import lpips_loss as lpips_mod

BETA = 0.9999


def _w(n: int) -> float:
    return (1 - BETA) / (1 - BETA**n + 1e-8)


# ----------------------------------------------------------------- class-balanced CE
def test_cb_weights_formula():
    counts = torch.tensor([0, 1, 7, 10000])
    w = class_balanced_weights(counts, BETA)
    assert w.dtype == torch.float64
    for c, n in enumerate(counts.tolist()):
        assert w[c].item() == pytest.approx(_w(n), rel=1e-9)
    assert w[1] > w[2] > w[3]  # rarer classes weigh more


def test_cb_ce_hand_computation():
    # B=1, C=2, 2x2 tokens: labels [[1, 0], [1, 1]] -> n_0 = 1, n_1 = 3
    logits = torch.tensor([[[[2.0, -1.0], [0.5, 0.0]], [[-1.0, 1.5], [1.0, -2.0]]]])
    labels = torch.tensor([[[1, 0], [1, 1]]])
    num, den = 0.0, 0.0
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        z = [logits[0, c, i, j].item() for c in range(2)]
        y = labels[0, i, j].item()
        ce = -z[y] + math.log(sum(math.exp(v) for v in z))
        w = _w({0: 1, 1: 3}[y])
        num, den = num + w * ce, den + w
    loss = ClassBalancedCELoss(beta=BETA, loss_weight=1.0)(logits, labels)
    assert loss.item() == pytest.approx(num / den, rel=1e-5)
    # loss_weight scales, (B, 1, h, w) labels are accepted, and plain CE differs (the weights matter)
    loss2 = ClassBalancedCELoss(beta=BETA, loss_weight=2.5)(logits, labels[:, None])
    assert loss2.item() == pytest.approx(2.5 * num / den, rel=1e-5)
    assert abs(F.cross_entropy(logits, labels).item() - num / den) > 1e-3


def test_cb_ce_any_number_of_classes_and_grad():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, 4, generator=g, requires_grad=True)
    labels = torch.randint(0, 5, (3, 4, 4), generator=g)
    loss = ClassBalancedCELoss()(logits, labels)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    # (B, C) logits without spatial dims
    flat = ClassBalancedCELoss()(torch.randn(6, 3, generator=g), torch.tensor([0, 1, 2, 2, 2, 1]))
    assert torch.isfinite(flat)


@pytest.mark.parametrize(
    'labels, err',
    [
        (torch.zeros(2, 3, 3, dtype=torch.long), ValueError),  # wrong spatial size
        (torch.full((2, 4, 4), 2), ValueError),  # class index out of range (C = 2)
        (torch.zeros(2, 4, 4), TypeError),  # float labels
    ],
)
def test_cb_ce_bad_labels(labels, err):
    with pytest.raises(err):
        ClassBalancedCELoss()(torch.zeros(2, 2, 4, 4), labels)


def _split_run(monkeypatch, logits, labels, sync):
    """Run the loss on two halves as two 'processes' whose counts are all-reduced (simulated)."""
    halves = [(logits[:1], labels[:1]), (logits[1:], labels[1:])]
    counts = [torch.bincount(lab.flatten(), minlength=logits.shape[1]) for _, lab in halves]

    def fake_all_reduce(t, op='sum'):
        assert op == 'sum'
        t.copy_(counts[0] + counts[1])

    seen = []
    real_weights = cbce.class_balanced_weights
    monkeypatch.setattr(cbce.dist, 'is_distributed', lambda: True)
    monkeypatch.setattr(cbce.dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(cbce.dist, 'all_reduce', fake_all_reduce)
    monkeypatch.setattr(cbce, 'class_balanced_weights', lambda c, b: seen.append(real_weights(c, b)) or seen[-1])
    loss_fn = ClassBalancedCELoss(sync_counts=sync)
    losses = []
    for lg, lb in halves:
        losses.append(loss_fn(lg, lb))
    return losses, seen


def test_cb_ce_synced_counts_make_split_invariant(monkeypatch):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 4, 4, generator=g)
    labels = torch.zeros(2, 4, 4, dtype=torch.long)
    labels[0, :3] = 1  # half 0: 12 ones / 4 zeros; half 1: all zeros -> very different local counts
    full = ClassBalancedCELoss(sync_counts=False)(logits, labels)
    full_w = class_balanced_weights(torch.bincount(labels.flatten(), minlength=2), BETA)

    losses, seen = _split_run(monkeypatch, logits, labels, sync=True)
    for w in seen:  # every process uses the full-batch weights
        torch.testing.assert_close(w, full_w)
    # DDP averages the per-process gradients: the mean of the per-process losses is the full-batch loss
    assert ((losses[0] + losses[1]) / 2).item() == pytest.approx(full.item(), rel=1e-5)

    # Per-process counts (the authors' behaviour) give other weights and another loss.
    monkeypatch.undo()
    losses, seen = _split_run(monkeypatch, logits, labels, sync=False)
    assert not torch.allclose(seen[0], full_w)
    assert abs(((losses[0] + losses[1]) / 2).item() - full.item()) > 1e-3


# ----------------------------------------------------------------- SSIM
def test_ssim_loss_matches_pyiqa_ssimc():
    import pyiqa

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 24, 20, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 24, 20, generator=g)).clamp(0, 1)
    metric = pyiqa.create_metric('ssimc', device='cpu')
    expected = (1 - metric(x, y)).mean().item()
    assert SSIMLoss(loss_weight=1.0)(x, y).item() == pytest.approx(expected, abs=1e-6)
    assert SSIMLoss(loss_weight=0.5)(x, y).item() == pytest.approx(0.5 * expected, abs=1e-6)


def test_ssim_loss_hand_values_and_grad():
    # Constant images a, b: variances vanish, so SSIM = (2AB + C1) / (A^2 + B^2 + C1) on the 0..255 scale.
    a, b = 100 / 255, 180 / 255
    x, y = torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)
    c1 = (0.01 * 255) ** 2
    ssim = (2 * 100 * 180 + c1) / (100**2 + 180**2 + c1)
    assert SSIMLoss()(x, y).item() == pytest.approx(1 - ssim, rel=1e-5)  # fp32 window
    assert SSIMLoss()(y, y).item() == pytest.approx(0.0, abs=1e-7)
    p = torch.rand(1, 3, 16, 16, requires_grad=True)
    SSIMLoss()(p, torch.rand(1, 3, 16, 16)).backward()
    assert p.grad.abs().sum() > 0  # straight-through rounding keeps the gradient


def test_ssim_loss_errors_and_off():
    with pytest.raises(ValueError, match='11x11'):
        SSIMLoss()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match='equal shape'):
        SSIMLoss()(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    off = SSIMLoss(loss_weight=0)
    assert off.ssim is None and off(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)).item() == 0


# ----------------------------------------------------------------- LPIPS
@pytest.fixture()
def empty_hub(monkeypatch, tmp_path):
    """Point torch hub (pyiqa / torchvision caches) at an empty folder."""
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    return tmp_path


def test_lpips_missing_files_named(empty_hub):
    with pytest.raises(FileNotFoundError) as exc:
        LPIPSLoss()
    msg = str(exc.value)
    assert lpips_mod.LPIPS_VGG_FILE in msg and lpips_mod.VGG16_FILE in msg
    assert str(empty_hub / 'hub' / 'pyiqa' / lpips_mod.LPIPS_VGG_FILE) in msg
    missing = empty_hub / 'nowhere' / 'lpips.pth'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        LPIPSLoss(lpips_path=str(missing), vgg_path=str(missing))


def test_lpips_weight_zero_needs_nothing(empty_hub):
    loss = LPIPSLoss(loss_weight=0, lpips_path='/no/such/file.pth')
    assert loss.net is None
    assert loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)).item() == 0


@pytest.fixture(scope='module')
def fake_weights(tmp_path_factory):
    """Random VGG16 features (torchvision layout) and random LPIPS heads, saved like the real files."""
    from torchvision.models.vgg import cfgs, make_layers

    tmp_path = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    feats = make_layers(cfgs['D'])
    vgg_file, lpips_file = tmp_path / 'vgg16.pth', tmp_path / 'lpips_vgg.pth'
    torch.save(
        {f'features.{k}': v for k, v in feats.state_dict().items()} | {'classifier.0.bias': torch.zeros(3)}, vgg_file
    )
    chns = [64, 128, 256, 512, 512]
    heads = {f'lin{i}.model.1.weight': torch.rand(1, c, 1, 1) for i, c in enumerate(chns)}
    torch.save(heads, lpips_file)
    return feats, heads, str(vgg_file), str(lpips_file)


def _lpips_by_hand(feats, heads, x, y):
    """LPIPS v0.1: scale to [-1, 1], ImageNet-ish shift/scale, 5 VGG relu taps, unit-normalise, weight, mean."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = [3, 8, 15, 22, 29]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    total = 0
    fx, fy = (2 * x - 1 - shift) / scale, (2 * y - 1 - shift) / scale
    start = 0
    for i, t in enumerate(taps):
        for layer in list(feats)[start : t + 1]:
            fx, fy = layer(fx), layer(fy)
        start = t + 1
        nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + F.conv2d((nx - ny) ** 2, heads[f'lin{i}.model.1.weight']).mean([1, 2, 3])
    return total


def test_lpips_from_local_files_matches_hand_formula(fake_weights, empty_hub):
    feats, heads, vgg_file, lpips_file = fake_weights
    loss = LPIPSLoss(loss_weight=1.0, lpips_path=lpips_file, vgg_path=vgg_file)
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        expected = _lpips_by_hand(feats.eval(), heads, x, y).mean().item()
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-4)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-7)
    xg = x.clone().requires_grad_(True)
    loss(xg, y).backward()  # usable as a training loss: gradient reaches the prediction
    assert xg.grad.abs().sum() > 0

    # frozen, eval even after .train(), and kept out of (and tolerant to) the owning model's state dict
    assert all(not p.requires_grad for p in loss.parameters())
    holder = torch.nn.Module()
    holder.perceptual_loss = loss
    holder.train()
    assert not loss.net.training
    assert not any('perceptual_loss.net' in k for k in holder.state_dict())
    holder.load_state_dict({}, strict=True)
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-4)  # weights untouched


def test_lpips_rejects_wrong_files(fake_weights, tmp_path, empty_hub):
    feats, heads, vgg_file, lpips_file = fake_weights
    with pytest.raises(RuntimeError, match='not an LPIPS-VGG weight file'):
        LPIPSLoss(lpips_path=vgg_file, vgg_path=vgg_file)
    bad = tmp_path / 'corrupt.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='corrupt.pth'):
        LPIPSLoss(lpips_path=lpips_file, vgg_path=str(bad))
