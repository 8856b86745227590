"""PyIQAMetric: pyiqa's own numbers, offline weight handling, the NIQE implementations, bad input."""

import importlib
import math
import os.path as osp
import socket
from types import SimpleNamespace

import numpy as np
import pyiqa
import pytest
import torch
import torch.nn.functional as F

from iter_mm.evaluation.metrics import MissingWeightsError, PyIQAMetric
from iter_mm.evaluation.metrics.pyiqa_metric import niqe_params_mat, offline_weights, to_gray
from mmagic.evaluation import Evaluator
from mmagic.structures import DataSample

mm_niqe = importlib.import_module('mmagic.evaluation.metrics.niqe')  # the module (the package exports the function)


def photo(h: int, w: int, seed: int) -> torch.Tensor:
    """(3, h, w) float in [0, 255], integer-valued: smooth bicubic-upscaled content, a flat square, texture."""
    g = torch.Generator().manual_seed(seed)
    img = F.interpolate(
        torch.rand(1, 3, h // 8, w // 8, generator=g), size=(h, w), mode='bicubic', align_corners=False
    )[0]
    img[:, h // 4 : h // 2, w // 4 : w // 2] = 0.5  # flat: where NIQE's local variance cancels out
    img[:, h // 2 :, : w // 3] += 0.2 * torch.rand(3, h - h // 2, w // 3, generator=g)
    return (img.clamp(0, 1) * 255.0).round()


def sample(pred, gt=None):
    s = {'output': {'pred_img': pred}}
    if gt is not None:
        s['gt_img'] = gt
    return s


def run(metric, *samples):
    metric.process(None, list(samples))
    return [r[metric.metric] for r in metric.results]


@pytest.fixture(autouse=True)
def hermetic_cache(tmp_path, monkeypatch):
    """Empty torch-hub / pyiqa caches and our own cache dir: nothing leaks in from the machine."""
    from pyiqa.utils import download_util

    monkeypatch.setenv('ITER_MM_CACHE', str(tmp_path / 'iter_mm_cache'))
    monkeypatch.setattr(download_util, 'DEFAULT_CACHE_DIR', str(tmp_path / 'hub' / 'pyiqa'))
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    yield tmp_path
    torch.hub.set_dir(old)


def test_psnr_ssim_equal_pyiqa_and_hand_formula():
    gt, pred = photo(48, 64, 0), photo(48, 64, 1)
    psnr = PyIQAMetric('psnr', prefix='iqa')
    value = run(psnr, sample(pred, gt))[0]
    mse = ((pred - gt) / 255.0).pow(2).mean().item()
    assert value == pytest.approx(10 * math.log10(1.0 / mse), rel=1e-5)  # independent reference
    assert value == pytest.approx(
        pyiqa.create_metric('psnr', device='cpu')(pred[None] / 255.0, gt[None] / 255.0).item(), rel=1e-6
    )
    ssim = run(PyIQAMetric('ssim', channel_order='rgb'), sample(pred, gt))[0]
    ref = pyiqa.create_metric('ssim', device='cpu')(pred[None] / 255.0, gt[None] / 255.0).item()
    assert ssim == pytest.approx(ref, abs=1e-6) and 0 < ssim < 1


def test_crop_convert_and_channel_order():
    gt, pred = photo(40, 40, 2), photo(40, 40, 3)
    value = run(PyIQAMetric('psnr', crop_border=4, convert_to='Y', channel_order='rgb'), sample(pred, gt))[0]
    y = lambda x: (16.0 + (x / 255.0 * torch.tensor([65.481, 128.553, 24.966]).view(3, 1, 1)).sum(0))[4:-4, 4:-4]
    mse = ((y(pred) - y(gt)) / 255.0).pow(2).mean().item()  # BT.601 luma, hand formula
    assert value == pytest.approx(10 * math.log10(1.0 / mse), rel=1e-4)
    bgr = run(PyIQAMetric('psnr', crop_border=4, convert_to='Y'), sample(pred.flip(0), gt.flip(0)))[0]  # default
    assert bgr == pytest.approx(value, rel=1e-6)
    hwc = run(
        PyIQAMetric('psnr', crop_border=4, convert_to='Y', input_order='HWC', channel_order='rgb'),
        sample(pred.permute(1, 2, 0).numpy(), gt.permute(1, 2, 0).numpy()),
    )[0]
    assert hwc == pytest.approx(value, rel=1e-6)


def test_batched_equals_single_and_mmagic_evaluator():
    imgs = [photo(32, 32, 4), photo(32, 32, 5), photo(24, 40, 6)]
    gts = [photo(32, 32, 7), photo(32, 32, 8), photo(24, 40, 9)]
    batched = run(PyIQAMetric('psnr'), *[sample(p, g) for p, g in zip(imgs, gts)])
    single = [run(PyIQAMetric('psnr'), sample(p, g))[0] for p, g in zip(imgs, gts)]
    assert batched == pytest.approx(single, rel=1e-6)
    # MMagic's Evaluator: prepare (device of the model), process DataSamples, evaluate() without size
    from mmengine.registry import init_default_scope

    init_default_scope('mmagic')
    evaluator = Evaluator(metrics=[dict(type='PyIQAMetric', metric_name='psnr', prefix='iqa')])
    module = torch.nn.Linear(1, 1)
    module.data_preprocessor = None
    evaluator.prepare_metrics(module, SimpleNamespace(dataset=[0] * 3))
    samples = [DataSample(gt_img=g, output=DataSample(pred_img=p)) for p, g in zip(imgs, gts)]
    evaluator.process(samples, None, evaluator.metrics)
    assert evaluator.evaluate()['iqa/PSNR'] == pytest.approx(float(np.mean(single)), rel=1e-6)


def test_default_channel_order_is_what_mmagic_test_loop_hands_metrics():
    """MMagic's DataPreprocessor (test mode) turns RGB-loaded gt_img and the destructed pred_img into BGR."""
    from mmagic.models.data_preprocessors import DataPreprocessor

    pp = DataPreprocessor(mean=[0.0] * 3, std=[255.0] * 3)
    rgb = photo(192, 192, 17)
    ds = DataSample(gt_img=rgb.clone())
    ds.set_metainfo(dict(img_channel_order='rgb', gt_channel_order='rgb'))
    data = pp(dict(inputs=[rgb.clone()], data_samples=[ds]), False)
    pred = pp.destruct(data['inputs'], data['data_samples'])[0]  # what a model's output becomes
    assert torch.equal(pred, rgb.flip(0)) and torch.equal(data['data_samples'].gt_img[0], rgb.flip(0))
    ours = run(PyIQAMetric('niqe'), sample(pred))[0]
    assert ours == pytest.approx(run(PyIQAMetric('niqe', channel_order='rgb'), sample(rgb))[0], abs=1e-9)
    assert ours != pytest.approx(run(PyIQAMetric('niqe', channel_order='rgb'), sample(pred))[0], abs=1e-3)


def test_niqe_pyiqa_matches_pyiqa_with_mmagic_parameters(tmp_path):
    img = photo(192, 192, 10)
    path = niqe_params_mat(str(tmp_path / 'c'))
    import scipy.io

    mat = scipy.io.loadmat(path)
    npz = np.load(osp.join(osp.dirname(mm_niqe.__file__), 'niqe_pris_params.npz'))
    assert np.array_equal(np.ravel(mat['mu_prisparam']), np.ravel(npz['mu_pris_param']))
    assert np.array_equal(mat['cov_prisparam'], npz['cov_pris_param'])
    assert niqe_params_mat(str(tmp_path / 'c')) == path  # reused, not rewritten
    value = run(PyIQAMetric('niqe', channel_order='rgb'), sample(img))[0]
    ref = pyiqa.create_metric('niqe', device='cpu', pretrained_model_path=path)(img[None] / 255.0).item()
    assert value == pytest.approx(ref, abs=1e-9) and 2 < value < 100


def test_niqe_mmagic_impl_is_mmagic_niqe():
    img = photo(192, 288, 11)
    gray = img.mean(0, keepdim=True).round()  # one channel: no colour conversion on either side
    ours = run(PyIQAMetric('niqe', niqe_impl='mmagic', prefix='x'), sample(gray))[0]
    assert ours == pytest.approx(float(mm_niqe.niqe(gray[0].numpy(), 0, input_order='HW')), abs=1e-9)
    # RGB: our luma 0.299/0.587/0.114 is MMagic's convert_to='gray' (cv2 on BGR); rounding may differ at .5
    rgb = run(PyIQAMetric('niqe', niqe_impl='mmagic', channel_order='rgb'), sample(img))[0]
    bgr_hwc = img.flip(0).permute(1, 2, 0).numpy()
    assert rgb == pytest.approx(float(mm_niqe.niqe(bgr_hwc, 0, input_order='HWC', convert_to='gray')), abs=2e-3)


def test_niqe_implementations_differ_and_why():
    """docs/niqe.md: on the same gray image the two NIQE codes differ only through (1) MMagic's float32 image
    (local variance E[x^2] - mu^2 cancels in float32) and (2) pyiqa's Gaussian window, cast to float32 and so
    summing to 1 + 1e-8 instead of 1. MMagic's core in float64 with pyiqa's window gives pyiqa's number."""
    from pyiqa.matlab_utils import fspecial

    img = photo(192, 192, 12).mean(0, keepdim=True).round()
    py = run(PyIQAMetric('niqe'), sample(img))[0]
    mm = run(PyIQAMetric('niqe', niqe_impl='mmagic'), sample(img))[0]
    assert abs(py - mm) > 0.01  # the difference exists (0.0499 here) ...
    npz = np.load(osp.join(osp.dirname(mm_niqe.__file__), 'niqe_pris_params.npz'))
    mu, cov, window = npz['mu_pris_param'], npz['cov_pris_param'], npz['gaussian_window']
    y = img[0].numpy()
    assert float(mm_niqe.niqe_core(y.astype(np.float32), mu, cov, window)) == pytest.approx(mm, abs=1e-9)
    pyiqa_window = fspecial(7, 7 / 6)[0, 0].double().numpy()
    assert abs(pyiqa_window.sum() - 1) > 1e-9 and abs(window.sum() - 1) < 1e-12
    # ... and vanishes once MMagic's core runs in float64 with pyiqa's window (the rest, resize and AGGD grid
    # rounding, is 2e-6 here)
    assert float(mm_niqe.niqe_core(y.astype(np.float64), mu, cov, pyiqa_window)) == pytest.approx(py, abs=1e-5)
    # each cause alone leaves a gap (0.009 and 0.050 here)
    assert abs(float(mm_niqe.niqe_core(y.astype(np.float64), mu, cov, window)) - py) > 3e-3
    assert abs(float(mm_niqe.niqe_core(y.astype(np.float32), mu, cov, pyiqa_window)) - py) > 3e-2


def test_missing_weights_name_the_file_then_local_files_work(tmp_path):
    # torchvision backbone first (LPIPS' AlexNet), named with the cache path it would be read from
    with pytest.raises(MissingWeightsError, match=r'alexnet-owt-7be5be79\.pth.*hub/checkpoints'):
        PyIQAMetric('lpips')
    with pytest.raises(MissingWeightsError, match=r'musiq_koniq_ckpt-e95806b9\.pth'):
        PyIQAMetric('musiq')
    with pytest.raises(MissingWeightsError, match=r'CNNIQA_koniq10k-e6f14c91\.pth'):
        PyIQAMetric('cnniqa')
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        PyIQAMetric('cnniqa', pretrained_model_path=str(tmp_path / 'nowhere.pth'))
    # a local file (here: random weights saved in pyiqa's checkpoint layout) is used, by path or by file name
    from pyiqa.archs.cnniqa_arch import CNNIQA

    torch.manual_seed(0)
    net = CNNIQA(pretrained=None).eval()
    ckpt = str(tmp_path / 'cnniqa.pth')
    torch.save({'params': net.state_dict()}, ckpt)
    img = photo(40, 48, 13)
    with torch.no_grad():
        ref = net(img[None] / 255.0).item()
    a = run(PyIQAMetric('cnniqa', pretrained_model_path=ckpt, channel_order='rgb'), sample(img))[0]
    b = run(PyIQAMetric('cnniqa', weight_files={'CNNIQA_koniq10k-e6f14c91.pth': ckpt}), sample(img.flip(0)))[0]
    assert a == pytest.approx(ref, abs=1e-6) and b == pytest.approx(ref, abs=1e-6)
    # torch-hub / torchvision requests (backbones) are served the same way, and only inside the block
    small = str(tmp_path / 'backbone.pth')
    torch.save({'w': torch.arange(3.0)}, small)
    url = 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth'
    with offline_weights('x', backbone_path=small):
        assert torch.equal(torch.hub.load_state_dict_from_url(url)['w'], torch.arange(3.0))
    assert torch.hub.load_state_dict_from_url.__module__ == 'torch.hub'  # restored afterwards


def test_no_network_inside_metric_builds():
    import urllib.request

    with offline_weights('x'):
        sock = socket.socket()
        try:
            with pytest.raises(MissingWeightsError, match='network connection'):
                sock.connect(('127.0.0.1', 9))
        finally:
            sock.close()
        with pytest.raises(MissingWeightsError, match="look up the network host 'example.org'"):
            socket.getaddrinfo('example.org', 443)
        with pytest.raises(MissingWeightsError, match="'RN50.pt'"):
            urllib.request.urlopen('https://openaipublic.azureedge.net/clip/models/x/RN50.pt')
    assert socket.getaddrinfo.__module__ == 'socket' and urllib.request.urlopen.__module__ == 'urllib.request'


def test_bad_inputs_give_clear_errors():
    img = photo(32, 32, 15)
    with pytest.raises(ValueError, match='4 channels'):
        run(PyIQAMetric('psnr'), sample(torch.cat([img, img[:1]]), torch.cat([img, img[:1]])))
    with pytest.raises(ValueError, match='input_range'):
        run(PyIQAMetric('psnr'), sample(img * 257.0, img * 257.0))  # 16-bit data declared as 8-bit
    assert run(PyIQAMetric('psnr', input_range=65535.0), sample(img * 257.0, img * 257.0 + 1.0))[0] > 70  # eps caps 80
    with pytest.raises(ValueError, match='at least 2'):
        run(PyIQAMetric('niqe'), sample(photo(64, 64, 16)))
    with pytest.raises(KeyError, match="needs 'gt_img'"):
        run(PyIQAMetric('psnr'), sample(img))
    with pytest.raises(ValueError, match='differ in shape'):
        run(PyIQAMetric('psnr'), sample(img, img[:, :16]))
    with pytest.raises(RuntimeError, match="pyiqa metric 'ssim' failed.*1, 1"):
        run(PyIQAMetric('ssim'), sample(img[:, :1, :1], img[:, :1, :1]))
    with pytest.raises(ValueError, match='crop_border'):
        run(PyIQAMetric('psnr', crop_border=16), sample(img, img))
    with pytest.raises(ValueError, match="metric_name='niqe' only"):
        PyIQAMetric('psnr', niqe_impl='mmagic')
    with pytest.raises(KeyError, match="unknown pyiqa metric 'nope'"):
        PyIQAMetric('nope')


def test_to_gray_formulas():
    rgb = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    assert to_gray(rgb, 'gray').item() == pytest.approx(0.299 + 0.5 * 0.587)
    assert to_gray(rgb, 'Y').item() == pytest.approx((16 + 65.481 + 0.5 * 128.553) / 255.0)


def test_tolerant_niqe_scores_flat_outputs_as_nan_and_averages_the_rest():
    """MMagic's NIQE raises on a flat image (its fit's SVD fails), which ended short validation runs; TolerantNIQE
    gives NaN for that image, warns, and averages the others; a normal image scores exactly as MMagic's."""
    import numpy as np

    from iter_mm.evaluation.metrics import TolerantNIQE
    from mmagic.evaluation.metrics import NIQE

    kw = dict(input_order='CHW', convert_to='Y', crop_border=0)
    mine, theirs = TolerantNIQE(**kw), NIQE(**kw)
    rng = np.random.default_rng(0)
    textured = [torch.from_numpy(rng.uniform(0, 255, (3, 96, 96)).astype(np.float32)) for _ in range(2)]
    flat = torch.full((3, 96, 96), 128.0)
    with pytest.raises(np.linalg.LinAlgError):
        theirs.process_image(None, flat, None)
    scores = [theirs.process_image(None, t, None) for t in textured]

    def run(images):
        mine.results.clear()
        mine.process(None, [{'output': {'pred_img': img}, 'gt_img': img} for img in images])
        return mine.compute_metrics(mine.results)['NIQE']

    assert run(textured) == pytest.approx(np.mean(scores), rel=1e-12)
    with pytest.warns(UserWarning, match='1 of 3 image'):
        assert run(textured[:1] + [flat] + textured[1:]) == pytest.approx(np.mean(scores), rel=1e-12)
    with pytest.warns(UserWarning, match='1 of 1'):
        assert np.isnan(run([flat]))
