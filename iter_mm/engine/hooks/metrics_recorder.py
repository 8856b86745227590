"""A hook that keeps the metrics of the last validation and test epochs (MMagic's MultiTestLoop returns none)."""

from typing import Dict, Optional

from mmengine.hooks import Hook

from mmagic.registry import HOOKS


@HOOKS.register_module()
class MetricsRecorderHook(Hook):
    """Remembers the metrics of the last validation and test epochs.

    After a run, ``hook.metrics['val']`` and ``hook.metrics['test']`` hold them (dicts). No arguments.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.metrics: Dict[str, dict] = {}

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        """Keep the validation metrics as ``self.metrics['val']``.

        Args:
            runner (Runner): the runner.
            metrics (dict[str, float], optional): the epoch's metrics. Default: None (kept as an empty dict).
        """
        self.metrics['val'] = dict(metrics or {})

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        """Keep the test metrics as ``self.metrics['test']``.

        Args:
            runner (Runner): the runner.
            metrics (dict[str, float], optional): the epoch's metrics. Default: None (kept as an empty dict).
        """
        self.metrics['test'] = dict(metrics or {})
