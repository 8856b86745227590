"""Training and inference models of ITER (stage I: SwinVQGANModel; stages II+III: ITERModel)."""

from .iter_model import ITERModel  # noqa: F401
from .swinvqgan_model import SwinVQGANModel  # noqa: F401
