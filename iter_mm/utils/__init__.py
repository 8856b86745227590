"""Pure-torch helpers: checkpoint mapping, padding, tiling, colour (no MMCV / MMagic needed); config, image I/O
and quiet-output helpers are imported from their modules."""

from .checkpoint import convert_official, detect_kind, load_official  # noqa: F401,E402
from .color import color_correction  # noqa: F401,E402
from .padding import crop_to, pad_to_multiple, pad_to_size  # noqa: F401,E402
from .tiling import tiled_apply  # noqa: F401,E402
