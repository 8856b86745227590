"""Token diagnostics against hand-computed counts."""

import math

import pytest
import torch

from iter_mm.evaluation.metrics import EvaluatorPrecisionRecall, TokenAccuracy
from mmagic.registry import METRICS
from mmagic.structures import DataSample


def samples():
    """Two images of different token-grid sizes (2x2 and 1x3), as dicts (MMagic's evaluator) and DataSample."""
    a = dict(
        output=dict(
            gt_tokens=torch.tensor([[1, 2], [3, 4]]),
            lq_tokens=torch.tensor([[1, 0], [3, 0]]),  # 2 / 4 correct
            pred_tokens=torch.tensor([[1, 2], [3, 0]]),  # 3 / 4 correct
            good_prob=torch.tensor([[0.9, 0.8], [0.3, 0.1]]),
        )
    )
    b = DataSample(
        output=DataSample(
            gt_tokens=torch.tensor([[5, 5, 5]]),
            lq_tokens=torch.tensor([[[5, 5, 0]]]),  # (1, h, w) is accepted: 2 / 3
            pred_tokens=torch.tensor([[5, 5, 5]]),  # 3 / 3
            good_prob=torch.tensor([[0.7, 0.2, 0.95]]),
        )
    )
    return [a, b]


def test_token_accuracy_micro_average():
    metric = METRICS.build(dict(type='TokenAccuracy', prefix='tok'))
    metric.process(None, samples())
    res = metric.evaluate(2)
    # micro average over the 7 tokens: (2 + 2) / 7 and (3 + 3) / 7 (a per-image mean would give 0.583 / 0.875)
    assert res['tok/TokenAcc_lq'] == pytest.approx(4 / 7)
    assert res['tok/TokenAcc_pred'] == pytest.approx(6 / 7)


def test_precision_recall_by_hand():
    metric = EvaluatorPrecisionRecall(alpha=[0.7, 0.25, 1.0], prefix='ev')
    metric.process(None, samples())
    metric.size = 2  # as MMagic's evaluator's prepare() sets it; evaluate() then needs no size
    res = metric.evaluate()
    # truth (lq == gt): a = [[T, F], [T, F]], b = [T, T, F] -> 4 good tokens of 7
    assert res['ev/GoodRate'] == pytest.approx(4 / 7)
    # alpha 0.7 (>= inclusive): a predicts [[T, T], [F, F]] (TP 1), b predicts [T, F, T] (TP 1): P = R = 2 / 4
    assert res['ev/EvalPrecision@0.7'] == pytest.approx(0.5)
    assert res['ev/EvalRecall@0.7'] == pytest.approx(0.5)
    assert res['ev/EvalF1@0.7'] == pytest.approx(0.5)
    assert res['ev/PredGoodRate@0.7'] == pytest.approx(4 / 7)
    # alpha 0.25: a predicts [[T, T], [T, F]] (TP 2 of 3), b [T, F, T] (TP 1 of 2): P = 3/5, R = 3/4
    assert res['ev/EvalPrecision@0.25'] == pytest.approx(0.6)
    assert res['ev/EvalRecall@0.25'] == pytest.approx(0.75)
    assert res['ev/EvalF1@0.25'] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    # alpha 1.0: nothing predicted good -> precision undefined (NaN), recall 0
    assert math.isnan(res['ev/EvalPrecision@1']) and res['ev/EvalRecall@1'] == 0.0


def test_single_alpha_keys_have_no_suffix():
    metric = EvaluatorPrecisionRecall(alpha=0.7)
    metric.process(None, samples())
    assert metric.compute_metrics(metric.results)['EvalPrecision'] == pytest.approx(0.5)


def test_missing_gt_tokens_is_a_clear_error():
    sample = dict(output=dict(lq_tokens=torch.zeros(2, 2), pred_tokens=torch.zeros(2, 2)))
    with pytest.raises(KeyError, match='gt_tokens.*GT image'):
        TokenAccuracy().process(None, [sample])


def test_shape_mismatch_and_bad_alpha():
    bad = samples()[0]
    bad['output']['pred_tokens'] = torch.zeros(3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match='pred_tokens'):
        TokenAccuracy().process(None, [bad])
    with pytest.raises(ValueError, match=r'alpha must lie in \[0, 1\]'):
        EvaluatorPrecisionRecall(alpha=1.5)


def test_metrics_read_what_iter_model_writes():
    """The contract: ITERModel's test_step fills output.{lq,pred,gt}_tokens and good_prob for these metrics."""
    import os.path as osp

    from mmengine.registry import init_default_scope

    from iter_mm.utils.config import inference_model_cfg, load_config

    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    cfg = load_config(osp.join(root, 'configs', 'iter', 'iter_x4_tiny.py'))
    init_default_scope('mmagic')
    torch.manual_seed(0)
    from mmagic.registry import MODELS

    model = MODELS.build(inference_model_cfg(cfg.model)).eval()
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 64, 64, generator=g) * 255.0
    lq = torch.nn.functional.avg_pool2d(gt[None], 4)[0]
    out = model.test_step(dict(inputs=[lq], data_samples=[DataSample(gt_img=gt)]))
    sample = out[0].to_dict()
    acc, pr = TokenAccuracy(), EvaluatorPrecisionRecall(alpha=0.5)
    acc.process(None, [sample])
    pr.process(None, [sample])
    o = out[0].output
    truth = o.lq_tokens == o.gt_tokens
    assert acc.compute_metrics(acc.results)['TokenAcc_lq'] == pytest.approx(truth.float().mean().item())
    assert acc.compute_metrics(acc.results)['TokenAcc_pred'] == pytest.approx(
        (o.pred_tokens == o.gt_tokens).float().mean().item()
    )
    assert pr.compute_metrics(pr.results)['PredGoodRate'] == pytest.approx((o.good_prob >= 0.5).float().mean().item())
