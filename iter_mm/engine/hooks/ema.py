"""MMagic's EMA hook for models whose networks are wrapped one by one (stage I under multi-GPU training)."""

from mmengine.model import is_model_wrapper

from mmagic.engine.hooks import ExponentialMovingAverageHook
from mmagic.registry import HOOKS


@HOOKS.register_module()
class WrapperAwareEMAHook(ExponentialMovingAverageHook):
    """``ExponentialMovingAverageHook`` that also works under ``MMSeparateDistributedDataParallel``.

    That wrapper replaces ``model.generator`` by a DDP wrapper whose state keys start with ``module.``, which the
    EMA copy (``generator_ema``, not wrapped: it has no gradients) does not have; MMagic's hook then fails at
    the first update. Here the source network is unwrapped for the duration of the update; on one process the
    hook is MMagic's.

    Args:
        *args, **kwargs: Those of MMagic's ``ExponentialMovingAverageHook`` (``module_keys``, ``interval``,
            ``interp_cfg``, ...).
    """

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Update the EMA copies as MMagic's hook does, with the wrapped source networks unwrapped meanwhile.

        Args:
            runner (Runner): the training runner.
            batch_idx (int): index of the batch in the epoch.
            data_batch (dict, optional): the batch. Default: None.
            outputs (dict, optional): the train step's outputs. Default: None.
        """
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        wrapped = {}
        for key in self.module_keys:
            name = key[: -len('_ema')]
            net = getattr(model, name)
            if is_model_wrapper(net):
                wrapped[name] = net
                model._modules[name] = net.module
        try:
            super().after_train_iter(runner, batch_idx, data_batch, outputs)
        finally:
            model._modules.update(wrapped)
