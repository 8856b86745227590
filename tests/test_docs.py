"""The documentation stays true to the repository: links resolve, the tool flags it shows exist, the front page stays
short, and nothing points at files outside the repository."""

import ast
import functools
import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / 'README.md', ROOT / 'configs' / 'iter' / 'README.md', *(ROOT / 'docs').glob('*.md')])
# front ends whose flags are those of another tool (they pass them on)
PASSES_ON = {
    'dist_train.sh': 'train.py',
    'slurm_train.sh': 'train.py',
    'dist_test.sh': 'test.py',
    'slurm_test.sh': 'test.py',
}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _split_fences(text: str):
    """(prose lines, code blocks) of a Markdown text: fenced blocks are returned apart, each as one string."""
    prose, blocks, block = [], [], None
    for line in text.splitlines():
        if line.lstrip().startswith('```'):
            if block is None:
                block = []
            else:
                blocks.append('\n'.join(block))
                block = None
            continue
        (prose if block is None else block).append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r'[`*]', '', heading.strip().lower())
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text)
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset:
    prose, _ = _split_fences(path.read_text(encoding='utf-8'))
    seen: dict = {}
    out = set()
    for line in prose:
        m = re.match(r'#{1,6} (.+)', line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f'{base}-{n}')
    return frozenset(out)


def test_slug_follows_github():
    assert slug("The authors' weights") == 'the-authors-weights'
    assert slug('Inference speed (recorded 2026-11-30)') == 'inference-speed-recorded-2026-11-30'
    assert slug('`tools/compare_sr.py`: comparing') == 'toolscompare_srpy-comparing'
    assert slug('phi-e calls') == 'phi-e-calls'


def _links(path: Path):
    prose, _ = _split_fences(path.read_text(encoding='utf-8'))
    text = '\n'.join(re.sub(r'`[^`]*`', '', ln) for ln in prose)
    for target in re.findall(r'\]\(([^)\s]+)\)', text) + re.findall(r'<img src="([^"]+)"', text):
        if not re.match(r'[a-z]+://|mailto:', target):
            yield target


@pytest.mark.parametrize('page', PAGES, ids=_rel)
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        file_part, _, anchor = target.partition('#')
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f'{target}: no such file')
        elif anchor and dest.suffix == '.md' and anchor not in anchors(dest):
            broken.append(f'{target}: no heading with anchor #{anchor} in {_rel(dest)}')
    assert not broken, f'{_rel(page)}: ' + '; '.join(broken)


def test_metafile_lists_every_shipped_config():
    import yaml

    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    assert index['Import'] == ['configs/iter/metafile.yml']
    meta = yaml.safe_load((ROOT / 'configs' / 'iter' / 'metafile.yml').read_text())
    listed = [m['Config'] for m in meta['Models']]
    assert sorted(listed) == sorted(f'configs/iter/{p.name}' for p in (ROOT / 'configs' / 'iter').glob('*.py'))
    assert len({m['Name'] for m in meta['Models']}) == len(listed)
    assert (ROOT / meta['Collections'][0]['README']).is_file()


def test_front_page_is_short_and_has_citation_and_licences():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert len(text.splitlines()) <= 210
    assert '@inproceedings' in text and 'AAAI' in text
    assert 'CC BY-NC-SA 4.0' in text and 'Apache' in text


def _commands(page: Path):
    """(tool file name, [flags]) of every ``tools/X`` command written in a page: in fenced blocks (with backslash
    continuations joined) and in inline code. Flags before the tool belong to another program (torchrun)."""
    prose, blocks = _split_fences(page.read_text(encoding='utf-8'))
    snippets = re.findall(r'`([^`]*tools/[^`]*)`', '\n'.join(prose))
    for block in blocks:
        snippets += block.replace('\\\n', ' ').splitlines()
    for snippet in snippets:
        snippet = re.sub(r'(^|\s)#.*', '', snippet)  # shell comments
        for segment in re.split(r'\s(?=\S*tools/\w+\.(?:py|sh)\b)|;|&&', snippet):
            m = re.search(r'tools/(\w+\.(?:py|sh))\b(.*)', segment)
            if m:
                yield m.group(1), re.findall(r'(?<![\w-])(--[a-z][\w-]*)', m.group(2))


def _tool_help(name: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / name), '--help'],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f'tools/{name} --help failed: {proc.stderr[-2000:]}'
    return proc.stdout


def _documented_flags() -> dict:
    wanted: dict = {}
    for page in PAGES:
        for tool, flags in _commands(page):
            wanted.setdefault(tool, {})
            for flag in flags:
                wanted[tool].setdefault(flag, set()).add(_rel(page))
    return wanted


DOCUMENTED = _documented_flags()


def test_documented_tools_exist():
    missing = sorted(t for t in DOCUMENTED if not (ROOT / 'tools' / t).is_file())
    assert not missing, f'the docs name tools that do not exist: {missing}'


@pytest.mark.parametrize('tool', sorted(t for t in {PASSES_ON.get(t, t) for t in DOCUMENTED} if t.endswith('.py')))
def test_documented_flags_exist_in_help(tool):
    flags: dict = {}
    for name, used in DOCUMENTED.items():
        if PASSES_ON.get(name, name) == tool:
            for flag, where in used.items():
                flags.setdefault(flag, set()).update(where)
    if not (ROOT / 'tools' / tool).is_file():
        pytest.fail(f'tools/{tool} does not exist')
    text = _tool_help(tool)
    unknown = {f: sorted(w) for f, w in flags.items() if not re.search(rf'(?<![\w-]){re.escape(f)}(?![\w-])', text)}
    assert not unknown, f'tools/{tool} --help does not list {unknown}'


def _comment_and_doc_text():
    """(path, line number, text) of every comment and docstring of the code (shell scripts: ``#`` lines)."""
    for top in ('iter_mm', 'configs', 'tools', 'tests'):
        for path in sorted((ROOT / top).rglob('*')):
            if '__pycache__' in path.parts or path.suffix not in ('.py', '.sh'):
                continue
            src = path.read_text(encoding='utf-8')
            if path.suffix == '.sh':
                for i, line in enumerate(src.splitlines(), 1):
                    if line.lstrip().startswith('#'):
                        yield path, i, line
                continue
            for tok in tokenize.generate_tokens(io.StringIO(src).readline):
                if tok.type == tokenize.COMMENT:
                    yield path, tok.start[0], tok.string
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    body = node.body
                    if (
                        body
                        and isinstance(body[0], ast.Expr)
                        and isinstance(body[0].value, ast.Constant)
                        and isinstance(body[0].value.value, str)
                    ):
                        for j, line in enumerate(body[0].value.value.splitlines()):
                            yield path, body[0].lineno + j, line


def test_docs_pointers_in_code_resolve():
    """Comments and docstrings cite docs pages by anchor (``docs/faithfulness.md#adaptive-start``, and further
    ``#anchors`` of the same page after it): each page and anchor must exist."""
    pointer = re.compile(r'docs/(\w+\.md)((?:#[\w-]+)?(?:, #[\w-]+)*)')
    broken = []
    for path, i, line in _comment_and_doc_text():
        for m in pointer.finditer(line):
            page = ROOT / 'docs' / m.group(1)
            names = re.findall(r'#([\w-]+)', m.group(2))
            if not page.is_file():
                broken.append(f'{_rel(path)}:{i}: no docs/{m.group(1)}')
            broken += [
                f'{_rel(path)}:{i}: no #{a} in docs/{m.group(1)}'
                for a in names
                if page.is_file() and a not in anchors(page)
            ]
    assert not broken, broken


def test_docs_point_nowhere_outside_the_repository():
    hits = []
    for page in PAGES:
        for i, line in enumerate(page.read_text(encoding='utf-8').splitlines(), 1):
            if '../shared' in line or 'ITER_REFERENCE' in line:
                hits.append(f'{_rel(page)}:{i}')
    assert not hits, hits


# NOTE for the lead: this test fails until the citations of sections of the team's reference file in code comments
# and docstrings are rewritten into docs/faithfulness.md pointers (run /work/notes/rewrite_ref_comments.py after
# merging); it then keeps new ones out.
def test_code_comments_cite_the_paper_or_the_docs():
    citation = re.compile(
        r'\b(?:ref\.|[Rr]eference)(?: sections?)? §?[1-9](?:\.\d+)*\b(?![\w-])|\.\./shared|'
        r'ITER_REFERENCE|\((?:4\.5\.\d|8\.\d\d?)\)'
    )
    hits = [f'{_rel(p)}:{i}: {ln.strip()[:100]}' for p, i, ln in _comment_and_doc_text() if citation.search(ln)]
    assert not hits, f'{len(hits)} lines cite a file outside the repository:\n' + '\n'.join(hits[:40])
