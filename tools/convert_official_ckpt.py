"""Convert the authors' released ITER checkpoints to iter-mm (MMEngine) checkpoints and back.

    python tools/convert_official_ckpt.py ITER_swinvqgan.pth work_dirs/swinvqgan.pth
    python tools/convert_official_ckpt.py ITER_x4.pth work_dirs/iter_x4.pth [--vqgan ITER_swinvqgan.pth]
    python tools/convert_official_ckpt.py work_dirs/iter_x4.pth ITER_x4_official.pth --reverse

Forward: official (BasicSR ``params``/``params_ema``) -> ``{'meta': ..., 'state_dict': {'generator.' + key}}``,
loadable by our SwinVQGANModel / ITERModel (tools/test.py, tools/infer.py). An ITER checkpoint without vqgan.*
needs --vqgan; the result always carries the VQGAN weights.
Reverse: iter-mm state dict or MMEngine checkpoint -> official ``{'params': ...}`` in the authors' key order,
including the ``generator.*`` decoder aliases.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


if __package__ in (None, ''):  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from iter_mm.errors import cli_message  # noqa: E402
from iter_mm.utils import checkpoint as ckpt  # noqa: E402  (pure torch: no MMCV / MMagic needed)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='source checkpoint')
    p.add_argument('dst', help='output checkpoint (not overwritten without --force)')
    p.add_argument('--vqgan', help='official Swin-VQGAN checkpoint to merge (for ITER checkpoints without vqgan.*)')
    p.add_argument('--reverse', action='store_true', help='iter-mm -> official')
    p.add_argument('--force', action='store_true', help='overwrite DST if it exists')
    p.add_argument('--unsafe-load', action='store_true',
                   help='allow pickled Python objects in SRC (only for trusted training checkpoints)')
    return p.parse_args(argv)


def _save(obj: dict, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + '.partial')
    torch.save(obj, tmp)
    os.replace(tmp, dst)


def _load(path: str, unsafe: bool) -> ckpt.StateDict:
    sd, _ = ckpt.extract_state_dict(ckpt.load_checkpoint_file(path, allow_pickle=unsafe))
    return ckpt.unwrap_model_state(sd)


def _report_manifest(official_sd: ckpt.StateDict, kind: ckpt.CheckpointKind) -> None:
    problems = ckpt.check_against_manifest(official_sd, ckpt.manifest_name(kind))
    if problems:
        print(f'note: {len(problems)} differences from the released {kind.name} configuration '
              f'(expected for custom configs), e.g. {problems[:3]}')


def convert(args: argparse.Namespace) -> str:
    """Run the conversion; returns a one-line summary. Raises ValueError/RuntimeError/FileNotFoundError."""
    src, dst = Path(args.src), Path(args.dst)
    if dst.exists() and not args.force:
        raise FileExistsError(f'{dst} exists; pass --force to overwrite it')
    if dst.exists() and dst.resolve() == src.resolve():
        raise ValueError('DST must differ from SRC')
    sd = _load(args.src, args.unsafe_load)
    kind = ckpt.detect_kind(sd)
    if args.reverse:
        if args.vqgan:
            raise ValueError('--vqgan only applies to official -> iter-mm conversion')
        if kind.layout != 'ours':
            raise ValueError(f'{src} is already an official checkpoint ({kind.name}); nothing to reverse')
        out = ckpt.ours_to_official(sd)
        _report_manifest(out, kind)
        _save({'params': out}, dst)
        return f'{kind.name} -> official ({len(out)} entries incl. generator aliases): {dst}'
    if kind.layout != 'official':
        raise ValueError(f'{src} is already an iter-mm checkpoint ({kind.name}); use --reverse to export it')
    _report_manifest(sd, kind)
    vsd = None
    if args.vqgan:
        if kind.family != 'iter':
            raise ValueError('--vqgan only applies to ITER checkpoints')
        vsd = _load(args.vqgan, args.unsafe_load)
        if kind.has_vqgan:
            print(f'note: replacing the vqgan.* weights of {src} by those of {args.vqgan}')
    elif kind.family == 'iter' and not kind.has_vqgan:
        raise ValueError(f'{src} ({kind.name}) does not contain the VQGAN weights; pass the Swin-VQGAN checkpoint '
                         'with --vqgan ITER_swinvqgan.pth')
    ours = ckpt.official_to_ours(sd, vsd)
    meta = dict(converted_from=src.name, source_kind=kind.name, vqgan_from=Path(args.vqgan).name if args.vqgan
                else None, converter='iter_mm tools/convert_official_ckpt.py')
    _save({'meta': meta, 'state_dict': {'generator.' + k: v for k, v in ours.items()}}, dst)
    return f'{kind.name} -> iter-mm ({len(ours)} entries under generator.*): {dst}'


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(convert(args))
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as err:  # ITERError: + our flags
        print(cli_message(err, dict(vqgan='--vqgan', allow_pickle='--unsafe-load')), file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
