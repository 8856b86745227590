"""Convert the authors' released ITER checkpoints to iter-mm (MMEngine) checkpoints and back.

    python tools/convert_official_ckpt.py ITER_swinvqgan.pth work_dirs/swinvqgan.pth
    python tools/convert_official_ckpt.py ITER_x4.pth work_dirs/iter_x4.pth [--stage1-checkpoint ITER_swinvqgan.pth]
    python tools/convert_official_ckpt.py work_dirs/iter_x4.pth ITER_x4_official.pth --reverse

Forward: official (BasicSR ``params``/``params_ema``) -> ``{'meta': ..., 'state_dict': {'generator.' + key}}``,
loadable by our SwinVQGANModel / ITERModel (tools/test.py, tools/infer.py). An ITER checkpoint without vqgan.*
needs --stage1-checkpoint (the authors' ITER_swinvqgan.pth); the result always carries the VQGAN weights.
(Converting is optional: every loader of iter-mm reads the authors' files as they are.)
Reverse: iter-mm state dict or MMEngine checkpoint -> official ``{'params': ...}`` in the authors' key order,
including the ``generator.*`` decoder aliases.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from iter_mm.errors import ITERError  # noqa: E402
from iter_mm.utils.checkpoint import convert_file  # noqa: E402  (pure torch: no MMCV / MMagic needed)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('src', help='source checkpoint')
    p.add_argument('dst', help='output checkpoint (not overwritten without --force)')
    p.add_argument(
        '--stage1-checkpoint',
        '--vqgan',
        dest='stage1_checkpoint',
        help='official Swin-VQGAN checkpoint (ITER_swinvqgan.pth) to merge, for ITER checkpoints without '
        'vqgan.* (--vqgan: deprecated name)',
    )
    p.add_argument('--reverse', action='store_true', help='iter-mm -> official')
    p.add_argument('--force', action='store_true', help='overwrite DST if it exists')
    p.add_argument(
        '--unsafe-load',
        action='store_true',
        help='allow pickled Python objects in SRC (only for trusted training checkpoints)',
    )
    args = p.parse_args(argv)
    if '--vqgan' in (argv if argv is not None else sys.argv[1:]):
        print('note: --vqgan is deprecated; use --stage1-checkpoint', file=sys.stderr)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary, notes = convert_file(
            args.src,
            args.dst,
            args.stage1_checkpoint,
            reverse=args.reverse,
            overwrite=args.force,
            allow_pickle=args.unsafe_load,
        )
    except (ITERError, RuntimeError) as err:
        message = str(err)
        for library, cli in (
            ("stage1_checkpoint='ITER_swinvqgan.pth'", '--stage1-checkpoint ITER_swinvqgan.pth'),
            ('it is only overwritten when asked to', 'pass --force to overwrite it'),
            ('reverse the conversion', 'use --reverse'),
        ):
            message = message.replace(library, cli)
        print(f'error: {message}', file=sys.stderr)
        return 2
    for note in notes:
        print(f'note: {note}')
    print(summary)
    return 0


if __name__ == '__main__':
    sys.exit(main())
