"""The package's import graph (read from the source with ``ast``, nothing imported): no module imports its own
package back (``import iter_mm`` inside ``iter_mm``), and no two modules import each other, directly or through a
circle of others."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'iter_mm'


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path, modules: set) -> set:
    """The iter_mm modules ``path`` imports (at any depth of the file: function-level imports count too)."""
    name = _module_name(path)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[: len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([base] if base else []))
            targets = [f'{base}.{alias.name}' for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # 'iter_mm.utils.image_io.read_image' -> the module
                target = target.rpartition('.')[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict:
    paths = sorted(PACKAGE.rglob('*.py'))
    modules = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, modules) for p in paths}


def test_graph_sees_known_edges():
    """The reader finds relative and absolute imports (so the checks below can fail)."""
    graph = _graph()
    assert 'iter_mm.utils.picture' in graph['iter_mm.utils.image_write']
    assert 'iter_mm.errors' in graph['iter_mm.utils.image_io']
    assert 'iter_mm.utils.setup_env' in graph['iter_mm']


def test_no_module_imports_the_package_back():
    graph = _graph()
    back = sorted(m for m, deps in graph.items() if m != 'iter_mm' and 'iter_mm' in deps)
    assert not back, back


def test_no_import_circles():
    """No circle among modules (a package's ``__init__`` importing its own submodules is the usual tree, not a
    circle: edges from a module to the packages that contain it are left out)."""
    graph = {m: {d for d in deps if not m.startswith(d + '.')} for m, deps in _graph().items()}
    circles, state = [], {}

    def visit(node, stack):
        state[node] = 'open'
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 'open':
                circles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 'done'

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles
