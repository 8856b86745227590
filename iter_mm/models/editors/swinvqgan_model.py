"""Stage-I training model: the Swin-VQGAN autoencoder with a U-Net discriminator
(docs/faithfulness.md#stage-i-training)."""

import math
from copy import deepcopy
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import MessageHub
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict

from mmagic.models.editors.srgan import SRGAN
from mmagic.models.utils import set_requires_grad
from mmagic.registry import MODELS
from mmagic.structures import DataSample

from ...errors import InvalidOptionError
from ...utils.padding import pad_to_multiple
from .codebook_maintenance import CodebookMaintenance
from .wrapper_state import portable_wrapped_state


@MODELS.register_module()
class SwinVQGANModel(SRGAN):
    """Trains ``SwinVQGAN`` to reconstruct its (HQ) input; MMagic's SRGAN loop with a VQ-aware generator.

    Generator loss (every term optional, weights from the config):
    ``vq_loss_weight * L_vq + pixel_loss (L1) + ssim_loss (1 - SSIM) + perceptual_loss (LPIPS)
    + gan_loss (hinge: -mean D(rec), weight 0.1)``; discriminator: ``relu(1 - D(real)) + relu(1 + D(fake))``
    with two backward passes, both every iteration from iteration 0 (``train_cfg`` may set SRGAN's
    ``disc_steps`` / ``disc_init_steps``). Optimizers: ``optim_wrapper`` dict with 'generator' and
    'discriminator'.

    Val/test reconstruct images of any size (mirror-pad to ``generator.pad_multiple``, crop back) and write
    ``output.pred_img`` and ``output.pred_tokens`` ((h, w) int64, h = ceil(H / 8)).

    Args:
        generator (dict): ``SwinVQGAN`` config.
        discriminator (dict, optional): discriminator config, e.g. ``UNetDiscriminatorWithSpectralNorm``.
            Default: None.
        gan_loss (dict, optional): ``GANLoss`` config (``gan_type='hinge'``); its loss_weight applies to the
            generator only. Default: None (off).
        pixel_loss (dict, optional): pixel loss config. Default: None (off).
        ssim_loss (dict, optional): SSIM loss config. Default: None (off).
        perceptual_loss (dict, optional): perceptual loss config. Default: None (off).
        vq_loss_weight (float, optional): weight of the quantizer's loss returned by the generator; 0 / None =
            off. Default: 1.0.
        is_use_ema (bool): keep ``generator_ema`` (updated by MMagic's ``ExponentialMovingAverageHook``) and use
            it for val/test. Default: False.
        train_cfg (dict, optional): SRGAN's training options (``disc_steps``, ``disc_init_steps``, ...).
            Default: None.
        test_cfg (dict, optional): ``official_padding=True`` pads like the authors' self-test (always adds a
            full multiple). Default: None.
        init_cfg (dict, optional): weight initialisation config of :class:`BaseModule`. Default: None.
        data_preprocessor (dict, optional): config of the data preprocessor. Default: None.
        codebook_maintenance (dict, optional): None (the authors' training) or the options of
            :class:`~iter_mm.models.editors.codebook_maintenance.CodebookMaintenance`: codebook initialisation
            from encoder outputs (``init='sample'|'kmeans'``) and dead-code restarts (``restart_interval``).
            Default: None.
        gan_schedule (dict, optional): None (GAN term at full weight from iteration 0, D trained from iteration
            0, as the authors) or ``dict(start_iter=0, warmup_iters=0, d_lead_iters=0)``: the generator's GAN
            term is 0 before ``start_iter`` and ramps linearly to its full weight over ``warmup_iters``; the
            discriminator trains from ``start_iter - d_lead_iters``. Iterations are the Runner's (message hub),
            so a resumed run continues the schedule. Default: None.

    Raises:
        InvalidOptionError: ``gan_schedule`` with an unknown key or a negative value, or invalid
            ``codebook_maintenance`` options.
    """

    def __init__(
        self,
        generator: dict,
        discriminator: Optional[dict] = None,
        gan_loss: Optional[dict] = None,
        pixel_loss: Optional[dict] = None,
        ssim_loss: Optional[dict] = None,
        perceptual_loss: Optional[dict] = None,
        vq_loss_weight: Optional[float] = 1.0,
        is_use_ema: bool = False,
        train_cfg: Optional[dict] = None,
        test_cfg: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
        data_preprocessor: Optional[dict] = None,
        codebook_maintenance: Optional[dict] = None,
        gan_schedule: Optional[dict] = None,
    ) -> None:
        # BaseEditModel always builds a pixel loss; build a throw-away one when it is off.
        super().__init__(
            generator=generator,
            discriminator=discriminator,
            gan_loss=gan_loss,
            pixel_loss=pixel_loss if pixel_loss else dict(type='L1Loss'),
            perceptual_loss=perceptual_loss,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            init_cfg=init_cfg,
            data_preprocessor=data_preprocessor,
        )
        if not pixel_loss:
            self.pixel_loss = None
        self.ssim_loss = MODELS.build(ssim_loss) if ssim_loss else None
        self.vq_loss_weight = float(vq_loss_weight or 0.0)
        self.generator_ema = deepcopy(self.generator).requires_grad_(False) if is_use_ema else None
        portable_wrapped_state(self)  # multi-GPU checkpoints hold generator.* / discriminator.* as 1-GPU ones
        self.codebook_maintenance = CodebookMaintenance(**codebook_maintenance) if codebook_maintenance else None
        self.gan_schedule = self._check_gan_schedule(gan_schedule)
        self._gan_factor = 1.0

    @staticmethod
    def _check_gan_schedule(schedule: Optional[dict]) -> Optional[dict]:
        if not schedule:
            return None
        unknown = set(schedule) - {'start_iter', 'warmup_iters', 'd_lead_iters'}
        if unknown:
            raise InvalidOptionError(
                f'gan_schedule: unknown key(s) {sorted(unknown)}; valid: start_iter, warmup_iters, d_lead_iters'
            )
        out = dict(start_iter=0, warmup_iters=0, d_lead_iters=0)
        out.update({k: int(v) for k, v in schedule.items()})
        if min(out.values()) < 0:
            raise InvalidOptionError(f'gan_schedule values must be >= 0, got {out}')
        return out

    def _train_iter(self) -> int:
        """The Runner's current iteration (message hub 'iter'); the model's step counter outside a Runner."""
        it = MessageHub.get_current_instance().get_info('iter')
        return int(self.step_counter) if it is None else int(it)

    def gan_factor(self, it: int) -> float:
        """Multiplier of the generator's GAN term at iteration ``it``.

        Args:
            it (int): training iteration.

        Returns:
            float: in [0, 1]; 1 without ``gan_schedule``.
        """
        s = self.gan_schedule
        if s is None:
            return 1.0
        if it < s['start_iter']:
            return 0.0
        if s['warmup_iters'] == 0:
            return 1.0
        return min(1.0, (it - s['start_iter'] + 1) / s['warmup_iters'])

    def _run_d(self, it: int) -> bool:
        s = self.gan_schedule
        return s is None or it >= s['start_iter'] - s['d_lead_iters']

    # ------------------------------------------------------------------ networks
    @staticmethod
    def _unwrap(net: torch.nn.Module) -> torch.nn.Module:
        return net.module if is_model_wrapper(net) else net

    def _test_generator(self) -> torch.nn.Module:
        return self._unwrap(self.generator_ema if self.generator_ema is not None else self.generator)

    def _test_opt(self, key: str, default):
        return (self.test_cfg or {}).get(key, default)

    @torch.no_grad()
    def reconstruct(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Any-size reconstruction with the test generator (EMA if enabled).

        Args:
            img (Tensor): (B, 3, H, W) in [0, 1].

        Returns:
            tuple[Tensor, Tensor]: rec (B, 3, H, W) in [0, 1] and tokens int64 (B, ceil(H / s), ceil(W / s)),
            s = the generator's downscale (8).
        """
        gen = self._test_generator()
        h, w = img.shape[-2:]
        padded, _ = pad_to_multiple(img, gen.pad_multiple, official=self._test_opt('official_padding', False))
        rec, _, tokens = gen(padded)
        s = gen.downscale
        return rec[..., :h, :w], tokens[:, : math.ceil(h / s), : math.ceil(w / s)]

    # ------------------------------------------------------------------ forward modes
    def forward_tensor(self, inputs: torch.Tensor, data_samples=None, training: bool = False):
        """Tensor mode of the forward.

        Args:
            inputs (Tensor): (B, 3, H, W) in [0, 1].
            data_samples: unused. Default: None.
            training (bool): run the training generator. Default: False.

        Returns:
            tuple | Tensor: training: ``generator(inputs)``, i.e. (rec, vq_loss, tokens); otherwise the any-size
            rec (B, 3, H, W).
        """
        if training:
            return self.generator(inputs)
        return self.reconstruct(inputs)[0]

    def forward_inference(self, inputs: torch.Tensor, data_samples=None, **kwargs) -> DataSample:
        """Reconstruction (de-normalised like MMagic's SR models) and its token map.

        Args:
            inputs (Tensor): (B, 3, H, W) in [0, 1].
            data_samples (DataSample, optional): the batch's samples, for de-normalisation. Default: None.

        Returns:
            DataSample: ``pred_img`` (B, 3, H, W) and ``pred_tokens`` (B, ceil(H / 8), ceil(W / 8)) int64, on
            the CPU.
        """
        rec, tokens = self.reconstruct(inputs)
        pred = self.data_preprocessor.destruct(rec, data_samples)
        return DataSample(pred_img=pred.cpu(), pred_tokens=tokens.cpu())

    # ------------------------------------------------------------------ training
    def g_step(
        self, batch_outputs: Tuple[torch.Tensor, torch.Tensor], batch_gt_data: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        """Generator losses.

        Args:
            batch_outputs (tuple[Tensor, Tensor]): rec (B, 3, H, W) and the scalar vq_loss.
            batch_gt_data (Tensor): (B, 3, H, W) target.

        Returns:
            dict[str, Tensor]: the terms that are on (``loss_vq``, ``loss_pix``, ``loss_ssim``,
            ``loss_perceptual``, ``loss_gan``).

        Raises:
            RuntimeError: every generator loss is off.
        """
        rec, vq_loss = batch_outputs
        losses = dict()
        if self.vq_loss_weight:
            losses['loss_vq'] = self.vq_loss_weight * vq_loss
        if self.pixel_loss:
            losses['loss_pix'] = self.pixel_loss(rec, batch_gt_data)
        if self.ssim_loss:
            losses['loss_ssim'] = self.ssim_loss(rec, batch_gt_data)
        if self.perceptual_loss:
            losses['loss_perceptual'] = self.perceptual_loss(rec, batch_gt_data)
        if self.gan_loss and self.discriminator and self._gan_factor > 0:
            loss_gan = self.gan_loss(self.discriminator(rec), target_is_real=True, is_disc=False)
            losses['loss_gan'] = loss_gan if self._gan_factor == 1.0 else self._gan_factor * loss_gan
        if not losses:
            raise RuntimeError(
                'SwinVQGANModel: every generator loss is off (vq_loss_weight 0, no pixel/ssim/'
                'perceptual/gan loss); nothing to train'
            )
        return losses

    def extract_gt_data(self, data_samples: DataSample) -> torch.Tensor:
        """The HQ images the model reconstructs.

        Args:
            data_samples (DataSample): the batch's samples.

        Returns:
            Tensor: (B, 3, H, W) ``gt_img``.

        Raises:
            KeyError: the samples hold no ``gt_img``.
        """
        if 'gt_img' not in data_samples:
            raise KeyError(
                'SwinVQGANModel needs `gt_img` in the data samples (the HQ image the model '
                'reconstructs; an HQ-only pipeline loads `gt` and copies it to `img`)'
            )
        return data_samples.gt_img

    def train_step(self, data: List[dict], optim_wrapper: OptimWrapperDict) -> Dict[str, torch.Tensor]:
        """One G update (all generator losses) then ``disc_repeat`` D updates (SRGAN's d_step_with_optim).

        Codebook maintenance (if configured) runs before the generator forward and after the updates; the
        ``gan_schedule`` decides the GAN factor and whether D trains.

        Args:
            data (list[dict]): the batch from the dataloader.
            optim_wrapper (OptimWrapperDict): wrappers 'generator' and 'discriminator'.

        Returns:
            dict[str, Tensor]: log values (losses, and maintenance and ``gan_factor`` values when enabled).
        """
        g_optim_wrapper = optim_wrapper['generator']
        data = self.data_preprocessor(data, True)
        batch_inputs, data_samples = data['inputs'], data['data_samples']
        batch_gt = self.extract_gt_data(data_samples)

        log_vars = dict()
        it = self._train_iter()
        maintenance = self.codebook_maintenance
        if maintenance is not None:
            log_vars.update(maintenance.before_step(self._unwrap(self.generator), batch_inputs))
        self._gan_factor = self.gan_factor(it)
        with g_optim_wrapper.optim_context(self):
            rec, vq_loss, indices = self.forward_train(batch_inputs, data_samples)

        if self.if_run_g():
            set_requires_grad(self.discriminator, False)
            log_vars.update(self.g_step_with_optim((rec, vq_loss), batch_gt, optim_wrapper))

        if self.if_run_d() and self._run_d(it):
            set_requires_grad(self.discriminator, True)
            for _ in range(self.disc_repeat):
                log_vars.update(self.d_step_with_optim(rec.detach(), batch_gt, optim_wrapper))

        if maintenance is not None:
            log_vars.update(maintenance.after_step(self._unwrap(self.generator), batch_inputs, indices))
        if self.gan_schedule is not None:
            log_vars['gan_factor'] = self._gan_factor
        log_vars.pop('loss', None)
        self.step_counter += 1
        return log_vars
