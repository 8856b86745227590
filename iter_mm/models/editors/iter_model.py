"""ITERModel: stage II/III training (E_l, phi_e, phi_r on a frozen Swin-VQGAN) and adaptive inference.

Training follows the authors' LQ-stage iteration (docs/faithfulness.md#stages-ii-and-iii-training); inference wraps
:func:`iter_mm.models.inference.restore_image` (Algorithm 2, docs/faithfulness.md#adaptive-inference). The network is
an ``ITERNet``
config dict held as ``self.generator`` (children ``vqgan``, ``lq_encoder``, ``evaluator``, ``refiner``).

Fixes of the authors' training code (docs/faithfulness.md#differences-at-a-glance), each behind an option whose default
is the fix:

* ``el_gumbel_grad=True``: the straight-through Gumbel decode of E_l's logits carries a real gradient to E_l
  (the authors cast the hard sample to ``long``, so their L1 / LPIPS term on it is a constant:
  docs/faithfulness.md#gumbel-cast);
  ``False`` reproduces the inert official term. Its constant values are then not computed unless
  ``compute_inert_terms=True`` (they train nothing; skipping them saves a VQGAN decode per iteration).
* phi_e runs once on [S_l, S_l] (its detached argmax gives phi_r's condition flag) and once on the argmax of
  phi_r's output; the authors' duplicate no-grad call and unused call on a sample are not made
  (docs/faithfulness.md#network-calls-per-iteration).
* Inference is batch-invariant (per-image adaptive start, counter-based noise: ``restore_image``;
  docs/faithfulness.md#batch-invariant-inference).

There is no GAN term: the authors configure one but never activate it in this stage (docs/faithfulness.md#loss-terms,
term 8). Switching a term
off (weight 0 / None) can leave a network without gradient; under DDP set ``model_wrapper_cfg`` with
``find_unused_parameters=True`` then.
"""

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from torch import Tensor

from mmagic.models.base_models import BaseEditModel
from mmagic.registry import MODELS
from mmagic.structures import DataSample

from ...errors import InvalidOptionError, MissingDataError
from ...utils.checkpoint import load_state_dict_strict, stage1_aliases, stage1_weights
from ...utils.init_from import init_from_checkpoint
from ...utils.padding import crop_to, padded_apply
from ..inference import restore_image
from ..options import RestoreOptions
from ..training_noise import TrainingNoise, straight_through_gumbel


@MODELS.register_module()
class ITERModel(BaseEditModel):
    """Stage II/III model of ITER: trains E_l, phi_e and phi_r; restores images adaptively.

    Args:
        generator (dict): ``ITERNet`` config dict.
        stage1_checkpoint (str, optional): stage-I checkpoint (ours or the authors' ``ITER_swinvqgan.pth``, or a full
            ITER file with ``vqgan.*``), loaded into the frozen VQGAN by :meth:`init_weights` when training starts. The
            training tools derive it from the config's ``stage1_config`` unless given. ``None`` when a full ITER
            checkpoint is loaded instead (test, inference, resume): training then refuses to start unless such a
            checkpoint supplied the VQGAN. Default: None.
        init_from (str, optional): ITER checkpoint (the authors' ``ITER_x2.pth`` / ``ITER_x4.pth``, converted, or ours)
            whose E_l / phi_e / phi_r tensors of matching name and shape initialise training (:meth:`init_weights`;
            :func:`iter_mm.utils.init_from.init_from_checkpoint`). None = constructor initialisation. Default: None.
        lq_ce_weight (float): E_l token cross-entropy against S_h (Eq. 2; docs/faithfulness.md#loss-terms, term 1).
            0 = off. Default: 1.0.
        eval_lq_loss (dict, optional): phi_e on S_l with labels [S_l == S_h], e.g. ``ClassBalancedCELoss`` (Eq. 9;
            docs/faithfulness.md#loss-terms, term 2). None = off. Default: ``dict(type='ClassBalancedCELoss',
            loss_weight=1.0)``.
        eval_refined_ce_weight (float): phi_e on argmax(phi_r) with labels [argmax == S_h], plain CE
            (docs/faithfulness.md#loss-terms, term 3). 0 = off. Default: 1.0.
        refine_ce_weight (float): phi_r CE against S_h at all positions, each image weighted by its masked fraction
            (docs/faithfulness.md#loss-terms, term 4). 0 = off. Default: 1.0.
        perceptual_loss (dict, optional): image loss (e.g. ``LPIPSLoss``) on the hard straight-through Gumbel decodes of
            E_l and phi_r, as the authors: one call on the 2B batch [E_l decode; phi_r decode] vs [GT; GT]
            (docs/faithfulness.md#loss-terms, terms 5-7). None = off. Default: None.
        pixel_loss (dict, optional): image loss (e.g. MMagic's ``L1Loss``) on the E_l Gumbel decode, the authors'
            ``pixel_opt``. None = off. Default: None.
        el_gumbel_grad (bool): True (fixed) = the E_l decode passes a straight-through gradient to E_l; False
            (official) = it is a constant, as in the authors' code (docs/faithfulness.md#gumbel-cast). Default: True.
        compute_inert_terms (bool): with ``el_gumbel_grad=False`` only: also compute (and log) the constant terms on
            E_l's decode, ``loss_pix`` and E_l's half of the perceptual batch, as the authors do. False: E_l's decode is
            skipped and the perceptual term is ``0.5 * perceptual(phi_r decode, GT)``, the same gradient for a
            batch-mean loss (LPIPSLoss, MMagic's L1 / perceptual losses) without the constant. Default: False.
        train_noise (TrainingNoise, optional): source of the training draws (mask rate, mask positions, Gumbel noise of
            the two decodes), also settable as the attribute ``train_noise``; None: ``TrainingNoise()``, torch's global
            RNG. Default: None.
        train_cfg (dict, optional): unused, kept for MMagic's signature. Default: None.
        test_cfg (dict, optional): options of :meth:`restore` / test (fields of
            :class:`~iter_mm.models.options.RestoreOptions`) over its defaults (alpha 0.7, 8 steps, linear schedule,
            seed 0, tiled above 720x720: the authors' script). Default: None.
        val_cfg (dict, optional): options for validation over ``RestoreOptions.validation()`` (alpha 0.5, cosine
            schedule). Default: None.
        init_cfg (dict, optional): MMEngine initialisation config. Default: None.
        data_preprocessor (dict, optional): MMagic ``DataPreprocessor`` config; None: mean 0, std 255 (images in
            [0, 255] enter the networks in [0, 1]). Default: None.
        vqgan_ckpt (str, optional): deprecated name of ``stage1_checkpoint``. Default: None.

    Raises:
        TypeError: ``generator`` lacks one of ``vqgan``, ``lq_encoder``, ``evaluator``, ``refiner``.
    """

    def __init__(
        self,
        generator: dict,
        stage1_checkpoint: Optional[str] = None,
        init_from: Optional[str] = None,
        lq_ce_weight: float = 1.0,
        eval_lq_loss: Optional[dict] = dict(type='ClassBalancedCELoss', loss_weight=1.0),
        eval_refined_ce_weight: float = 1.0,
        refine_ce_weight: float = 1.0,
        perceptual_loss: Optional[dict] = None,
        pixel_loss: Optional[dict] = None,
        el_gumbel_grad: bool = True,
        compute_inert_terms: bool = False,
        train_noise: Optional[TrainingNoise] = None,
        train_cfg: Optional[dict] = None,
        test_cfg: Optional[dict] = None,
        val_cfg: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
        data_preprocessor: Optional[dict] = None,
        vqgan_ckpt: Optional[str] = None,
    ) -> None:
        # BaseEditModel.__init__ insists on a pixel loss; everything it sets is set here. Images enter as
        # [0, 255] and are scaled to [0, 1] (MMagic's usual SR preprocessing) unless configured otherwise.
        if data_preprocessor is None:
            data_preprocessor = dict(type='DataPreprocessor', mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0])
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        BaseModel.__init__(self, init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        self.train_cfg = train_cfg
        self.generator = MODELS.build(generator)
        for name in ('vqgan', 'lq_encoder', 'evaluator', 'refiner'):
            if not hasattr(self.generator, name):
                raise TypeError(
                    f'ITERModel needs an ITERNet-like generator with `{name}`; got {type(self.generator).__name__}'
                )
        self.generator.vqgan.requires_grad_(False)  # stage I is frozen (docs/faithfulness.md#frozen-stage-i)
        self.generator.vqgan.eval()

        self.stage1_checkpoint = stage1_aliases(stage1_checkpoint, vqgan_ckpt=vqgan_ckpt)
        self.init_from = init_from
        self.lq_ce_weight = float(lq_ce_weight or 0)
        self.eval_refined_ce_weight = float(eval_refined_ce_weight or 0)
        self.refine_ce_weight = float(refine_ce_weight or 0)
        self.eval_lq_loss = MODELS.build(eval_lq_loss) if eval_lq_loss else None
        self.perceptual_loss = MODELS.build(perceptual_loss) if perceptual_loss else None
        self.pixel_loss = MODELS.build(pixel_loss) if pixel_loss else None
        self.el_gumbel_grad = bool(el_gumbel_grad)
        self.compute_inert_terms = bool(compute_inert_terms)
        #: where :meth:`forward_train` takes its random draws from (replace it to seed or feed them)
        self.train_noise = train_noise if train_noise is not None else TrainingNoise()

        RestoreOptions.check_names(test_cfg or {}, 'test_cfg')
        RestoreOptions.check_names(val_cfg or {}, 'val_cfg')
        #: restoration options of test / inference and of validation (``RestoreOptions`` as plain dicts)
        self.test_cfg = RestoreOptions().replace(**(test_cfg or {})).as_dict()
        self.val_cfg = RestoreOptions.validation(**(val_cfg or {})).as_dict()
        self._vqgan_ready = False  # set by init_weights (stage-I file) or by loading a full checkpoint
        #: warn once when restoring with a VQGAN that was never loaded; ``init_model(random_weights=True)`` clears it
        self.warn_random_vqgan = True

    # ------------------------------------------------------------------ set-up
    def init_weights(self) -> None:
        """Initialise; load the frozen VQGAN from ``stage1_checkpoint``, then E_l / phi_e / phi_r from ``init_from``
        (called when training starts, before a ``load_from`` / ``resume`` checkpoint replaces them)."""
        super().init_weights()
        if self.stage1_checkpoint is None:
            print_log(
                'ITERModel: stage1_checkpoint is None: the VQGAN must come from a full ITER checkpoint '
                '(load_from / resume).',
                logger='current',
            )
        else:
            try:
                weights = stage1_weights(self.stage1_checkpoint, trusted=True)
            except MissingDataError:
                raise MissingDataError(
                    f'ITERModel: stage-I checkpoint not found: {self.stage1_checkpoint!r} (stage1_checkpoint)'
                ) from None
            load_state_dict_strict(
                self.generator.vqgan,
                weights,
                source=f'stage1_checkpoint {self.stage1_checkpoint}',
                target='the frozen VQGAN',
            )
            self._vqgan_ready = True
            print_log(f'ITERModel: frozen VQGAN loaded from {self.stage1_checkpoint}', logger='current')
        if self.init_from is not None:
            print_log(init_from_checkpoint(self.generator, self.init_from).summary(), logger='current')

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # A full ITER checkpoint that holds every VQGAN tensor supplies stage I (its weights win).
        vq_prefix = prefix + 'generator.vqgan.'
        needed = {vq_prefix + k for k in self.generator.vqgan.state_dict()}
        if needed and needed.issubset(state_dict.keys()):
            self._vqgan_ready = True
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def vqgan_loaded(self) -> bool:
        """Whether the frozen VQGAN holds trained weights (stage-I file or a full ITER checkpoint)."""
        return self._vqgan_ready

    def train(self, mode: bool = True) -> 'ITERModel':
        """Switch mode; the frozen VQGAN always stays in eval mode.

        Args:
            mode (bool): training mode for everything but the VQGAN. Default: True.

        Returns:
            ITERModel: ``self``.
        """
        super().train(mode)
        self.generator.vqgan.eval()
        return self

    # ------------------------------------------------------------------ training
    def forward_train(
        self, inputs: Tensor, data_samples: Optional[DataSample] = None, noise: Optional[TrainingNoise] = None, **kwargs
    ) -> Dict[str, Tensor]:
        """Losses and token accuracies of one iteration.

        Args:
            inputs (Tensor): LQ batch (B, 3, H/s, W/s) in [0, 1].
            data_samples (DataSample, optional): with ``gt_img`` (B, 3, H, W) in [0, 1]; H, W multiples of
                ``ITERNet.lq_pad_multiple * scale`` (64 for the released networks). Default: None (refused).
            noise (TrainingNoise, optional): source of this iteration's random draws. Default: None,
                ``self.train_noise``.
            **kwargs: ignored.

        Returns:
            dict[str, Tensor]: ``loss_*`` terms (summed by MMEngine) and ``acc_*`` diagnostics (logged only), each a
            scalar.

        Raises:
            RuntimeError: the frozen VQGAN has no trained weights, or E_l's token grid differs from the VQGAN's.
            ValueError: no ``gt_img``, or patch sizes that are not multiples of the windows or do not match the scale.
        """
        if not self._vqgan_ready:
            raise RuntimeError(
                'ITERModel: the frozen VQGAN has no trained weights. Set model.stage1_checkpoint to the stage-I '
                'checkpoint (loaded by init_weights when training starts), or load / resume a full ITER '
                'checkpoint that contains generator.vqgan.*.'
            )
        if data_samples is None or 'gt_img' not in data_samples:
            raise ValueError('ITERModel training needs data_samples with gt_img (the HQ patch)')
        net = self.generator
        lq, gt = inputs, data_samples.gt_img
        self._check_train_shapes(lq, gt)

        with torch.no_grad():
            gt_tokens = net.vqgan.encode_indices(gt)  # S_h (B, h, w) (docs/faithfulness.md#target-tokens)
        el_logits = net.lq_encoder(lq)  # (B, n, h, w)
        if el_logits.shape[-2:] != gt_tokens.shape[-2:]:
            raise RuntimeError(
                f'E_l token grid {tuple(el_logits.shape[-2:])} != VQGAN grid '
                f'{tuple(gt_tokens.shape[-2:])}: does ITERNet.scale match the data scale?'
            )
        lq_tokens = el_logits.detach().argmax(1)  # S_l: hard, so token losses never reach E_l
        # (docs/faithfulness.md#target-tokens)
        b, h, w = gt_tokens.shape
        noise = self.train_noise if noise is None else noise
        mask = noise.training_mask(b, h, w, device=lq.device)  # 1 = masked (docs/faithfulness.md#training-masks)
        mask = mask.to(torch.float32)
        lq_good = (lq_tokens == gt_tokens).long()

        losses: Dict[str, Tensor] = {}
        if self.lq_ce_weight > 0:  # Eq. 2
            losses['loss_lq_ce'] = self.lq_ce_weight * F.cross_entropy(el_logits.float(), gt_tokens)

        # phi_e on [S_l, S_l]: one call gives the class-balanced loss and (detached) phi_r's flag.
        with torch.set_grad_enabled(self.eval_lq_loss is not None):
            eval_lq_logits = net.evaluator(lq_tokens, lq_tokens)
        if self.eval_lq_loss is not None:  # Eq. 9
            losses['loss_eval_lq'] = self.eval_lq_loss(eval_lq_logits.float(), lq_good)
        eval_lq_pred = eval_lq_logits.detach().argmax(1)
        cond_flag = (eval_lq_pred == 0).to(torch.float32)  # 1 where phi_e rejects S_l (table in 3)

        ref_logits = net.refiner(lq_tokens, cond_flag, gt_tokens, 1.0 - mask)  # (B, n, h, w)
        ref_tokens = ref_logits.detach().argmax(1)
        if self.refine_ce_weight > 0:
            losses['loss_refine_ce'] = self.refine_ce_weight * masked_fraction_ce(ref_logits, gt_tokens, mask)
        if self.eval_refined_ce_weight > 0:
            eval_ref_logits = net.evaluator(ref_tokens, lq_tokens)
            losses['loss_eval_refined_ce'] = self.eval_refined_ce_weight * F.cross_entropy(
                eval_ref_logits.float(), (ref_tokens == gt_tokens).long()
            )

        losses.update(self._image_losses(el_logits, ref_logits, gt, noise))

        # diagnostics (no 'loss' in the name: logged, not optimised)
        losses['acc_lq'] = (lq_tokens == gt_tokens).float().mean()
        losses['acc_refine'] = (ref_tokens == gt_tokens).float().mean()
        losses['acc_refine_masked'] = ((ref_tokens == gt_tokens).float() * mask).sum() / mask.sum().clamp(min=1)
        losses['acc_eval'] = (eval_lq_pred == lq_good).float().mean()
        losses['acc_majority'] = majority_accuracy(gt_tokens)
        return losses

    def _check_train_shapes(self, lq: Tensor, gt: Tensor) -> None:
        net = self.generator
        mult = net.lq_pad_multiple * net.scale  # token grid a multiple of every Swin window
        if gt.shape[-2] % mult or gt.shape[-1] % mult:
            raise ValueError(
                f'GT patch {tuple(gt.shape[-2:])} must be a multiple of {mult} (VQGAN downscale x '
                'the Swin windows): set the dataset crop size accordingly'
            )
        if (lq.shape[-2] * net.scale, lq.shape[-1] * net.scale) != tuple(gt.shape[-2:]):
            raise ValueError(f'LQ {tuple(lq.shape[-2:])} x scale {net.scale} != GT {tuple(gt.shape[-2:])}')

    def _image_losses(
        self, el_logits: Tensor, ref_logits: Tensor, gt: Tensor, noise: Optional[TrainingNoise] = None
    ) -> Dict[str, Tensor]:
        """Straight-through hard Gumbel decodes (tau 1) and their image losses (docs/faithfulness.md#loss-terms, terms
        5-7).

        With ``el_gumbel_grad=False`` E_l's decode only yields constants; unless ``compute_inert_terms`` it is not
        made: no ``loss_pix``, and the perceptual mean over [E_l; phi_r] keeps its phi_r half, 0.5 * mean_b.
        """
        if self.perceptual_loss is None and self.pixel_loss is None:
            return {}
        vqgan = self.generator.vqgan
        noise = self.train_noise if noise is None else noise
        el_img = None
        if self.el_gumbel_grad or self.compute_inert_terms:
            with torch.set_grad_enabled(self.el_gumbel_grad and torch.is_grad_enabled()):
                logits = el_logits.float()
                el_onehot = straight_through_gumbel(
                    logits, noise.gumbel_exponential(logits.shape, logits.dtype, logits.device)
                )
                if not self.el_gumbel_grad:
                    el_onehot = el_onehot.detach()  # official: the `.long()` cast severs the graph
                    # (docs/faithfulness.md#gumbel-cast)
                el_img = vqgan.decode_onehot(el_onehot)
        else:  # draw E_l's Gumbel noise all the same: phi_r's noise, and so the run, stay the authors'
            noise.gumbel_exponential(el_logits.shape, torch.float32, el_logits.device)
        losses = {}
        if self.pixel_loss is not None and el_img is not None:
            losses['loss_pix'] = self.pixel_loss(el_img, gt)
        if self.perceptual_loss is not None:
            ref_logits = ref_logits.float()
            ref_exp = noise.gumbel_exponential(ref_logits.shape, ref_logits.dtype, ref_logits.device)
            ref_img = vqgan.decode_onehot(straight_through_gumbel(ref_logits, ref_exp))
            if el_img is None:  # d/d ref of mean over the 2B batch = 0.5 * d/d ref of mean over ref's B
                losses['loss_perceptual'] = 0.5 * self.perceptual_loss(ref_img, gt)
            else:
                losses['loss_perceptual'] = self.perceptual_loss(torch.cat([el_img, ref_img]), torch.cat([gt, gt]))
        return losses

    # ------------------------------------------------------------------ inference
    def options(self, loop: str = 'test', **overrides) -> RestoreOptions:
        """The restoration options of ``loop`` with ``overrides``.

        Args:
            loop (str): 'test' (``test_cfg``, also inference) or 'val' (``val_cfg``). Default: 'test'.
            **overrides: fields of :class:`~iter_mm.models.options.RestoreOptions` that replace the loop's values.

        Returns:
            RestoreOptions: the merged options.

        Raises:
            InvalidOptionError: ``loop`` is neither 'test' nor 'val', or an unknown option name in ``overrides``.
        """
        if loop not in ('test', 'val'):
            raise InvalidOptionError(f"loop must be 'test' or 'val', got {loop!r}")
        RestoreOptions.check_names(overrides, 'restore()')
        return RestoreOptions(**{**(self.val_cfg if loop == 'val' else self.test_cfg), **overrides})

    def restore(
        self,
        lq: Tensor,
        *,
        loop: str = 'test',
        return_result: bool = False,
        return_intermediates: bool = False,
        progress=None,
        **overrides,
    ):
        """Super-resolve ``lq`` with the options of ``loop`` and ``overrides``.

        Args:
            lq (Tensor): (B, 3, h, w) in [0, 1].
            loop (str): 'test' (``test_cfg``) or 'val' (``val_cfg``). Default: 'test'.
            return_result (bool): return the whole :class:`~iter_mm.models.sampling.RefineResult` (token maps).
                Default: False.
            return_intermediates (bool): return the ``RefineResult`` with per-step tokens, keep-masks and images.
                Default: False.
            progress (callable, optional): ``progress(done, total)``, called after every refinement step (see
                ``restore_image``). Default: None.
            **overrides: fields of :class:`~iter_mm.models.options.RestoreOptions`.

        Returns:
            Tensor | RefineResult: the SR image (B, 3, h*s, w*s) in [0, 1], or the ``RefineResult`` when
            ``return_result`` or ``return_intermediates``.
        """
        options = self.options(loop, **overrides)
        if not self._vqgan_ready and self.warn_random_vqgan:
            print_log(
                'ITERModel: restoring with a VQGAN that was never loaded (no checkpoint): the output is meaningless',
                logger='current',
                level=30,
            )
            self.warn_random_vqgan = False
        with torch.no_grad():
            result = restore_image(
                self.generator,
                lq,
                options,
                return_result=True,
                return_intermediates=return_intermediates,
                progress=progress,
            )
        return result if (return_result or return_intermediates) else result.image

    def forward_tensor(self, inputs: Tensor, data_samples: Optional[DataSample] = None, **kwargs) -> Tensor:
        """SR image with ``test_cfg``.

        Args:
            inputs (Tensor): LQ batch (B, 3, h, w) in [0, 1].
            data_samples (DataSample, optional): unused. Default: None.
            **kwargs: options of :meth:`restore` that override ``test_cfg``.

        Returns:
            Tensor: (B, 3, h*s, w*s) in [0, 1].
        """
        return self.restore(inputs, **kwargs)

    def forward_inference(self, inputs: Tensor, data_samples: Optional[DataSample] = None, **kwargs) -> DataSample:
        """Predictions for metrics: pred_img (0-255 as MMagic's) plus the token fields of the contract.

        Args:
            inputs (Tensor): LQ batch (B, 3, h, w) in [0, 1].
            data_samples (DataSample, optional): the batch's samples; with ``gt_img`` the GT tokens are added.
                Default: None.
            **kwargs: options of :meth:`restore`.

        Returns:
            DataSample: ``pred_img`` (B, 3, h*s, w*s) in [0, 255] and, from the token path, ``lq_tokens`` /
            ``pred_tokens`` (B, h', w') int64, ``good_prob`` (B, h', w') float and (with a GT) ``gt_tokens``
            (B, h', w'), all on the CPU.
        """
        loop = 'val' if kwargs.pop('_use_val_cfg', False) else 'test'
        result = self.restore(inputs, loop=loop, return_result=True, **kwargs)
        pred = self.data_preprocessor.destruct(result.image, data_samples)
        predictions = DataSample(pred_img=pred.cpu())
        if getattr(result, 'tokens', None) is not None:
            fields = dict(lq_tokens=result.lq_tokens, pred_tokens=result.tokens, good_prob=result.good_prob.float())
            if data_samples is not None and 'gt_img' in data_samples:
                fields['gt_tokens'] = self.gt_tokens(self._test_gt(data_samples), result.tokens.shape[-2:])
            predictions.set_tensor_data({k: v.cpu() for k, v in fields.items()})
        return predictions

    def val_step(self, data: dict) -> List[DataSample]:
        """Validation: as test, but with ``val_cfg`` (alpha 0.5 as the authors' validation).

        Args:
            data (dict): a batch from the dataloader (``inputs`` and ``data_samples``).

        Returns:
            list[DataSample]: the predictions of :meth:`forward_inference`.
        """
        data = self.data_preprocessor(data, False)
        return self(**data, mode='predict', _use_val_cfg=True)

    def _test_gt(self, data_samples: DataSample) -> Tensor:
        """GT of val/test samples in the space of the inputs (B, 3, H, W) in [0, 1].

        MMagic's preprocessor leaves the GT of val/test unnormalised and in BGR (for its metrics), while the inputs
        are normalised in their own channel order: undo both.
        """

        def first(v):
            return v[0] if isinstance(v, (list, tuple)) else v

        pre, meta = self.data_preprocessor, data_samples.metainfo
        gt = data_samples.gt_img.float()
        gt_order = first(meta.get('gt_img_output_channel_order'))
        in_order = first(meta.get('img_output_channel_order'))
        if gt.shape[1] == 3 and gt_order and in_order and str(gt_order).upper() != str(in_order).upper():
            gt = gt.flip(1)
        mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
        if getattr(pre, '_enable_normalize', False) and mean is not None:
            gt = (gt - mean.view(1, -1, 1, 1).to(gt)) / std.view(1, -1, 1, 1).to(gt)
        return gt.clamp(0, 1)

    @torch.no_grad()
    def gt_tokens(self, gt: Tensor, grid: Sequence[int]) -> Tensor:
        """S_h of ``gt`` on the token grid ``grid`` of the restored tokens.

        The GT is mirror-padded (bottom/right) to the VQGAN's pad_multiple, encoded, and the token map cropped to
        (h, w).

        Args:
            gt (Tensor): (B, 3, H, W) in [0, 1]; a GT larger than the SR size is cut to it.
            grid (Sequence[int]): token grid (h, w).

        Returns:
            Tensor: (B, h, w) int64.
        """
        vqgan = self.generator.vqgan
        size = (grid[0] * vqgan.downscale, grid[1] * vqgan.downscale)
        gt = gt[..., : size[0], : size[1]]  # a GT larger than lq * scale (no mod-crop) is cut to the SR size
        tokens = padded_apply(vqgan.encode_indices, gt, vqgan.pad_multiple)
        return crop_to(tokens, grid[0], grid[1])


def masked_fraction_ce(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """phi_r loss (docs/faithfulness.md#loss-terms, term 4): mean_b[ mean(mask_b) * mean_p CE(logits_bp, target_bp) ].

    CE in fp32.

    Args:
        logits (Tensor): (B, n, h, w).
        target (Tensor): (B, h, w) int64.
        mask (Tensor): (B, h, w), 1 = masked.

    Returns:
        Tensor: scalar loss.
    """
    ce = F.cross_entropy(logits.float(), target, reduction='none').flatten(1).mean(1)
    return (ce * mask.flatten(1).float().mean(1)).mean()


def majority_accuracy(tokens: Tensor) -> Tensor:
    """Accuracy of always predicting the batch's most frequent token (a baseline for the token accuracies).

    Args:
        tokens (Tensor): token map of any shape, int64.

    Returns:
        Tensor: scalar float in [0, 1].
    """
    counts = torch.bincount(tokens.flatten())
    return counts.max().float() / tokens.numel()
