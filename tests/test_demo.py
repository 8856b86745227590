"""Small-budget demo: scikit-image photo dataset, codebook initialisation / dead-code restarts, GAN schedule,
demo configs."""

import os
import os.path as osp
import socket
from copy import deepcopy

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from test_swinvqgan_model import _batch, _optims  # stage-I optimisers and a GT-only batch

import iter_mm  # noqa: F401  (registers the plugin)
from iter_mm.datasets import SKIMAGE_HELDOUT, SKIMAGE_TRAIN, SkimagePhotoDataset, skimage_data_dir
from iter_mm.models.editors.codebook_maintenance import INFO_KEY, kmeans, sample_rows
from mmagic.registry import MODELS
from mmagic.utils import register_all_modules

register_all_modules(init_default_scope=True)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG = lambda name: osp.join(ROOT, 'configs', 'iter', name)  # noqa: E731


@pytest.fixture(autouse=True)
def fresh_hub_one_thread(request):
    """A message hub of our own (no 'iter' left by another test) and one thread (shared 2-core machine)."""
    MessageHub.get_instance(f'test_demo_{request.node.name}')
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------- dataset
def test_skimage_dataset_split_is_fixed_and_disjoint():
    assert set(SKIMAGE_TRAIN).isdisjoint(SKIMAGE_HELDOUT)
    assert SKIMAGE_HELDOUT == ('chelsea.png', 'coffee.png', 'rocket.jpg')
    train = SkimagePhotoDataset(split='train')
    held = SkimagePhotoDataset(split='heldout', test_mode=True)
    infos = lambda ds: [ds.get_data_info(i) for i in range(len(ds))]  # noqa: E731
    assert [osp.basename(d['gt_path']) for d in infos(train)] == list(SKIMAGE_TRAIN)
    assert [d['key'] for d in infos(held)] == ['chelsea', 'coffee', 'rocket']
    assert all(
        osp.isfile(d['gt_path']) and osp.dirname(d['gt_path']) == skimage_data_dir() for d in infos(train) + infos(held)
    )
    assert len(SkimagePhotoDataset(split='all')) == len(SKIMAGE_TRAIN) + len(SKIMAGE_HELDOUT)
    colour = SkimagePhotoDataset(split='train_colour')
    names = [osp.basename(colour.get_data_info(i)['gt_path']) for i in range(len(colour))]
    assert names == list(SKIMAGE_TRAIN[:6]) + ['color.png'] and set(names).isdisjoint(SKIMAGE_HELDOUT)
    for name in names:  # colour images only: R, G and B differ somewhere
        img = cv2.imread(osp.join(skimage_data_dir(), name))
        assert img.ndim == 3 and np.abs(img.astype(int) - img[..., :1]).max() > 30, name
    assert len(SkimagePhotoDataset(names=['coffee.png'])) == 1
    with pytest.raises(ValueError, match='unknown split'):
        SkimagePhotoDataset(split='val')
    with pytest.raises(FileNotFoundError, match='missing'):
        SkimagePhotoDataset(names=['no_such_photo.png'])


def test_skimage_dataset_other_folder_lists_it(tmp_path):
    import cv2

    for name in ('a.png', 'b.png'):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    ds = SkimagePhotoDataset(data_root=str(tmp_path))  # a command-line data_root override: the whole folder
    assert sorted(ds.get_data_info(i)['key'] for i in range(len(ds))) == ['a', 'b']


def test_skimage_heldout_photo_loads_as_rgb():
    from mmagic.datasets.transforms import LoadImageFromFile

    ds = SkimagePhotoDataset(
        split='heldout', test_mode=True, pipeline=[dict(type='LoadImageFromFile', key='gt', channel_order='rgb')]
    )
    assert isinstance(ds.pipeline.transforms[0], LoadImageFromFile)
    img = ds[1]['gt']  # coffee: a colour photo
    assert img.shape == (400, 600, 3) and img.dtype == np.uint8


# ----------------------------------------------------------------- codebook maintenance
def _tiny_vqgan_model(**overrides):
    cfg = deepcopy(Config.fromfile(CFG('swinvqgan_tiny.py')).model)
    cfg.update(overrides)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _latents(model, batch):
    x = torch.stack(batch['inputs']) / 255
    with torch.no_grad():
        z = model.generator.encode(x)
    return z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])


def test_init_sample_sets_codebook_to_encoder_outputs():
    model = _tiny_vqgan_model(codebook_maintenance=dict(init='sample'), discriminator=None, gan_loss=None)
    batch = _batch(n=4)  # 4 x 4 x 4 = 64 latents < 128 codes: all used once, the rest reused with noise
    lat = _latents(model, batch)
    log = model.train_step(batch, _optims(model, lr=0.0))  # lr 0: only the initialisation changes weights
    assert log['codebook_init'] == 1.0
    code = model.generator.quantize.embedding.weight.detach()
    diff = (code[:, None] - lat[None]).abs().amax(-1)  # (codes, latents) max abs difference
    assert (diff.min(0).values == 0).all()  # every latent became a code exactly...
    assert (diff.min(1).values == 0).sum() == lat.shape[0]  # ...once; the other codes are noisy copies
    assert torch.unique(code, dim=0).shape[0] == code.shape[0]
    assert diff.min(1).values.max() < 0.1 * lat.abs().mean()
    # initialised once: a second step does not re-initialise
    assert 'codebook_init' not in model.train_step(batch, _optims(model, lr=0.0))
    assert MessageHub.get_current_instance().get_info(INFO_KEY)['initialised'] is True


def test_kmeans_finds_cluster_centres():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    pts = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    found = kmeans(pts, 3, 20, torch.Generator().manual_seed(1))
    assert torch.cdist(centres, found).min(1).values.max() < 0.1
    rows = sample_rows(pts, 10, torch.Generator().manual_seed(0))
    assert torch.cdist(rows, pts).min(1).values.max() == 0  # enough rows: exact, distinct latents
    assert torch.unique(rows, dim=0).shape[0] == 10


def test_dead_codes_are_restarted_and_counted():
    model = _tiny_vqgan_model(
        codebook_maintenance=dict(restart_interval=2, restart_min_count=1), discriminator=None, gan_loss=None
    )
    batch = _batch(n=2)
    hub = MessageHub.get_current_instance()
    gen = model.generator
    with torch.no_grad():
        used = set(gen.encode_indices(torch.stack(batch['inputs']) / 255).flatten().tolist())
    assert len(used) < 32  # 32 latents, some share a code: the other codes are dead in this window
    before = gen.quantize.embedding.weight.detach().clone()
    optims = _optims(model, lr=0.0)
    hub.update_info('iter', 0)
    log0 = model.train_step(batch, optims)
    assert 'vq_restarts' not in log0 and log0['vq_window_usage'] == pytest.approx(len(used) / 128)
    hub.update_info('iter', 1)
    log1 = model.train_step(batch, optims)
    assert log1['vq_restarts'] == 128 - len(used) == log1['vq_restarts_total']
    after = gen.quantize.embedding.weight.detach()
    moved = (after != before).any(1)
    assert moved.sum() == 128 - len(used) and not moved[sorted(used)].any()
    lat = _latents(model, batch)
    assert (after[moved][:, None] - lat[None]).norm(dim=-1).min(1).values.max() < 0.1 * lat.norm(dim=1).mean()
    # the new window starts empty; its state is in the message hub (saved in checkpoints, restored on resume)
    state = hub.get_info(INFO_KEY)
    assert state['window_start'] == 2 and sum(state['counts']) == 0 and state['restarts_total'] == 128 - len(used)
    assert INFO_KEY in hub.state_dict()['runtime_info']
    with torch.no_grad():
        assert len(set(gen.encode_indices(torch.stack(batch['inputs']) / 255).flatten().tolist())) > len(used)


def test_resumed_maintenance_continues_the_window():
    hub = MessageHub.get_current_instance()
    model = _tiny_vqgan_model(codebook_maintenance=dict(restart_interval=3), discriminator=None, gan_loss=None)
    batch = _batch(n=2)
    for it in range(2):
        hub.update_info('iter', it)
        model.train_step(batch, _optims(model, lr=0.0))
    saved = deepcopy(hub.state_dict())
    counts = list(hub.get_info(INFO_KEY)['counts'])
    assert sum(counts) == 2 * 2 * 4 * 4
    # a new process: a fresh model and hub, the checkpoint's hub state loaded (as Runner.resume does)
    resumed_hub = MessageHub.get_instance('test_demo_resumed')
    resumed_hub.load_state_dict(saved)
    fresh = _tiny_vqgan_model(codebook_maintenance=dict(restart_interval=3), discriminator=None, gan_loss=None)
    fresh.load_state_dict(model.state_dict())
    resumed_hub.update_info('iter', 2)
    log = fresh.train_step(batch, _optims(fresh, lr=0.0))
    # the window of 3 closes at iteration 2 and counts the 2 iterations before the resume (same batch, lr 0:
    # the same codes every time, so exactly the codes unused before the resume are dead)
    assert log['vq_restarts'] == int((torch.tensor(counts) == 0).sum())
    assert fresh.codebook_maintenance.state['window_start'] == 3


def test_options_off_leave_training_unchanged():
    paper = Config.fromfile(CFG('swinvqgan_df2k-ost.py')).model
    assert not paper.get('codebook_maintenance') and not paper.get('gan_schedule')
    batch = _batch(n=2)
    ref = _tiny_vqgan_model()
    neutral = _tiny_vqgan_model(
        codebook_maintenance=dict(init=None, restart_interval=0), gan_schedule=dict(start_iter=0, warmup_iters=0)
    )
    assert ref.codebook_maintenance is None and ref.gan_schedule is None
    torch.manual_seed(1)
    log_ref = ref.train_step(batch, _optims(ref))
    torch.manual_seed(1)
    log_neutral = neutral.train_step(batch, _optims(neutral))
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(neutral.state_dict()[k], v, rtol=0, atol=0)
    assert set(log_ref) == {'loss_vq', 'loss_pix', 'loss_ssim', 'loss_gan', 'loss_d_real', 'loss_d_fake'}
    assert set(log_neutral) - set(log_ref) == {'vq_window_usage', 'vq_restarts_total', 'gan_factor'}
    # no extra state-dict entries: the networks keep the authors' keys
    assert list(neutral.generator.state_dict()) == list(ref.generator.state_dict())


def test_gan_schedule_ramps_the_generator_term_and_delays_d():
    model = _tiny_vqgan_model(gan_schedule=dict(start_iter=4, warmup_iters=4, d_lead_iters=1))
    assert [model.gan_factor(i) for i in (0, 3, 4, 5, 7, 100)] == [0, 0, 0.25, 0.5, 1.0, 1.0]
    hub = MessageHub.get_current_instance()
    batch = _batch(n=2)
    d0 = deepcopy(model.discriminator.state_dict())
    hub.update_info('iter', 2)
    log = model.train_step(batch, _optims(model))
    assert 'loss_gan' not in log and 'loss_d_real' not in log and log['gan_factor'] == 0
    assert all(torch.equal(d0[k], v) for k, v in model.discriminator.state_dict().items() if v.is_floating_point())
    hub.update_info('iter', 3)  # D starts d_lead_iters before the generator term
    log = model.train_step(batch, _optims(model))
    assert 'loss_gan' not in log and 'loss_d_real' in log
    hub.update_info('iter', 5)
    model.eval()  # no spectral-norm power step: the same D output twice
    rec, vq, _ = model.generator(torch.stack(batch['inputs']) / 255)
    model._gan_factor = model.gan_factor(5)
    scaled = model.g_step((rec, vq), torch.stack(batch['inputs']) / 255)['loss_gan']
    model._gan_factor = 1.0
    full = model.g_step((rec, vq), torch.stack(batch['inputs']) / 255)['loss_gan']
    assert scaled.item() == pytest.approx(0.5 * full.item(), rel=1e-5)
    with pytest.raises(TypeError, match='unknown key'):
        _tiny_vqgan_model(gan_schedule=dict(begin=3))


# ----------------------------------------------------------------- two processes: identical codebooks
def _dist_worker(rank, world, port, queue):
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world)
    try:
        MessageHub.get_instance(f'dist_{rank}')
        model = _tiny_vqgan_model(
            codebook_maintenance=dict(init='kmeans', restart_interval=2), discriminator=None, gan_loss=None
        )
        vq = model.generator
        x = [torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(10 * rank + i)) for i in range(3)]
        logs = []
        for it in range(3):
            MessageHub.get_current_instance().update_info('iter', it)
            logs.append(model.codebook_maintenance.before_step(vq, x[it]))
            with torch.no_grad():
                idx = vq.encode_indices(x[it])
            logs.append(model.codebook_maintenance.after_step(vq, x[it], idx))
        # plain numbers, not tensors: a tensor is sent as a shared-memory handle, which fails once this worker exits
        queue.put(
            (
                rank,
                vq.quantize.embedding.weight.detach().numpy().copy(),
                logs,
                torch.as_tensor(model.codebook_maintenance.state['counts']).tolist(),
            )
        )
    finally:
        tdist.destroy_process_group()


def test_two_processes_rewrite_identical_codebooks():
    import multiprocessing as mp

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_dist_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (_, code0, logs0, counts0), (_, code1, logs1, counts1) = results
    assert np.array_equal(code0, code1)  # init and restarts computed on rank 0 and broadcast
    assert logs0 == logs1 and counts0 == counts1  # usage summed over both processes
    assert logs0[0] == dict(codebook_init=1.0) and 'vq_restarts' in logs0[3]


# ----------------------------------------------------------------- configs
def test_demo_configs_share_the_vqgan_and_ship_no_shared_paths():
    s1 = Config.fromfile(CFG('swinvqgan_demo.py'))
    s2 = Config.fromfile(CFG('iter_x4_demo.py'))
    assert s1.model.generator == s2.model.generator.vqgan
    from iter_mm.engine.stages import derived_stage1_checkpoint

    assert s2.model.stage1_checkpoint is None  # derived from stage1_config, not typed by hand
    assert derived_stage1_checkpoint(s2, CFG('iter_x4_demo.py')) == osp.join(
        'work_dirs', 'swinvqgan_demo', f'iter_{s1.train_cfg.max_iters}.pth'
    )
    for cfg in (s1, s2):
        assert cfg.train_dataloader.dataset.type == 'SkimagePhotoDataset'
        assert cfg.train_dataloader.dataset.split == 'train_colour' and cfg.val_dataloader.dataset.split == 'heldout'
    assert s1.model.codebook_maintenance.init == 'kmeans' and s1.model.discriminator is None
    assert s2.model.test_cfg.token_temperature == 0 and s2.model.val_cfg.token_temperature == 0
    for name in os.listdir(osp.join(ROOT, 'configs', 'iter')):
        if 'realworld' in name:  # real LQ photos without GT: no packaged stand-in
            continue
        text = open(CFG(name)).read()
        assert '../shared' not in text, name


# ----------------------------------------------------------------- GroupNorm groups of narrow networks
def test_norm_groups_changes_no_state_dict_entry():
    from iter_mm.models.archs import LQEncoder, SwinVQGAN

    small = dict(
        nf=32,
        ch_mult=(1, 2),
        num_res_blocks=1,
        codebook_size=16,
        embed_dim=8,
        swin_dim=16,
        swin_window=4,
        swin_depth=2,
        swin_num_rstb=1,
        swin_heads=2,
    )
    released, fewer = SwinVQGAN(**small), SwinVQGAN(**small, norm_groups=8)
    sd_a, sd_b = released.state_dict(), fewer.state_dict()
    assert list(sd_a) == list(sd_b) and all(sd_a[k].shape == sd_b[k].shape for k in sd_a)
    fewer.load_state_dict(sd_a, strict=True)
    groups = lambda m: {n.num_groups for n in m.modules() if isinstance(n, torch.nn.GroupNorm)}  # noqa: E731
    assert groups(released.encoder.blocks[1]) == {32}  # 32 channels in 32 groups: instance normalisation
    assert groups(fewer.encoder.blocks[1]) == {8}
    assert groups(SwinVQGAN(**small, norm_groups=32)) == groups(released)  # 32 = the released default
    el = dict(
        scale=4,
        base_channels=16,
        feat_dim=32,
        codebook_size=16,
        swin_dim=16,
        swin_num_rstb=1,
        swin_depth=2,
        swin_window=4,
        swin_heads=2,
    )
    assert list(LQEncoder(**el).state_dict()) == list(LQEncoder(**el, norm_groups=8).state_dict())
    assert groups(LQEncoder(**el, norm_groups=8)) == {8}


def test_instance_norm_removes_mean_colour_that_fewer_groups_keep():
    """The colour-cast mechanism of the narrow configs: with one channel per group the normalised features of an
    image and of the same image with a colour offset are equal, so no later layer can tell the colours apart."""
    from iter_mm.models.archs.vqgan import normalize

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 32, 1)  # a first layer with a bias
    x = torch.rand(1, 3, 16, 16)
    shifted = x + torch.tensor([0.2, -0.1, 0.0]).view(1, 3, 1, 1)  # the same photo, warmer
    inst, grouped = normalize(32, 32), normalize(32, 8)
    with torch.no_grad():
        assert torch.allclose(inst(conv(x)), inst(conv(shifted)), atol=1e-4)
        assert not torch.allclose(grouped(conv(x)), grouped(conv(shifted)), atol=1e-2)


@pytest.mark.parametrize(
    'name',
    [
        'swinvqgan_demo.py',
        'swinvqgan_tiny.py',
        'swinvqgan_df2k-ost.py',
        'iter_x4_demo.py',
        'iter_x4_tiny.py',
        'iter_x2_realsr.py',
    ],
)
def test_val_predictions_reach_the_metrics_in_the_gt_channel_order(name):
    """The input `img` carries its channel order, so an exact prediction is exactly the GT the metrics receive
    (before, the RGB input was taken for BGR and PSNR(Y) was computed on a channel-swapped prediction)."""
    from mmengine.registry import DefaultScope

    from iter_mm.utils.config import inference_model_cfg
    from mmagic.registry import DATASETS

    cfg = Config.fromfile(CFG(name))
    DefaultScope.get_instance(f'chk_{name}', scope_name='mmagic')
    ds_cfg = deepcopy(cfg.val_dataloader.dataset)
    ds_cfg.update(type='SkimagePhotoDataset', split='heldout', data_root=None, indices=None)
    ds_cfg.pop('data_prefix', None)
    item = DATASETS.build(ds_cfg)[0]
    model_cfg = inference_model_cfg(cfg.model)
    pre = MODELS.build(model_cfg).data_preprocessor
    data = pre(dict(inputs=[item['inputs']], data_samples=[item['data_samples']]), False)
    assert data['data_samples'].metainfo['img_channel_order'] == ['rgb']
    pred = pre.destruct(data['inputs'], data['data_samples'])  # an "exact" prediction of the input
    gt = data['data_samples'].gt_img
    if pred.shape == gt.shape:  # stage I: the input is the GT
        torch.testing.assert_close(pred, gt.float())
    else:  # x4: compare colours of the bicubic-size input with the GT's mean colour per channel
        assert torch.allclose(pred.mean((0, 2, 3)), gt.float().mean((0, 2, 3)), atol=12)
