"""Every shipped config's datasets build: the merged keys fit the dataset class (constructed with lazy_init, so
no data is needed; a wrong key is a TypeError at once, as a user would meet it at the first run)."""

import glob
import os.path as osp

import pytest

from iter_mm.utils.config import load_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p
)


def _datasets(cfg):
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loaders = cfg.get(key)
        if loaders is None:
            continue
        for loader in loaders if isinstance(loaders, (list, tuple)) else [loaders]:
            yield key, loader['dataset']


def _lazy(ds: dict) -> dict:
    """The dataset config with lazy_init everywhere (dataset wrappers included: they would init their parts)."""
    ds = dict(ds, lazy_init=True)
    if 'datasets' in ds:
        ds['datasets'] = [_lazy(d) for d in ds['datasets']]
    if isinstance(ds.get('dataset'), dict):
        ds['dataset'] = _lazy(ds['dataset'])
    return ds


@pytest.mark.parametrize('path', CONFIGS)
def test_config_datasets_construct(path):
    import iter_mm  # noqa: F401  (registers the datasets)
    from mmagic.registry import DATASETS

    cfg = load_config(osp.join(ROOT, path))
    built = 0
    for key, ds in _datasets(cfg):
        dataset = DATASETS.build(_lazy(ds))
        assert dataset is not None, (path, key)
        built += 1
    assert built >= 1, f'{path}: no dataloader'
