"""Install iter_mm: ITER (AAAI 2024) real-world super-resolution as an MMagic plugin."""

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildWithConfigs(build_py):
    """Also copy ``configs/`` (with each model's ``README.md`` and ``metafile.yml``) into the built package as
    ``iter_mm/.mim/configs`` and ``model-index.yml`` as ``iter_mm/.mim/model-index.yml`` (MMagic's layout), so that an
    installed wheel finds ``iter_mm::iter/...`` and ``configs/iter/...`` outside the repository and ``mim search``
    finds the models."""

    def run(self) -> None:
        super().run()
        mim = Path(self.build_lib) / 'iter_mm' / '.mim'
        target = mim / 'configs'
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(HERE / 'configs', target, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        shutil.copy(HERE / 'model-index.yml', mim / 'model-index.yml')


def read_requirements(name: str) -> list[str]:
    lines = (HERE / 'requirements' / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith('#')]


version: dict = {}
exec((HERE / 'iter_mm' / 'version.py').read_text(), version)

setup(
    name='iter-mm',
    version=version['__version__'],
    description='ITER: iterative token evaluation and refinement for real-world SR, as an MMagic plugin',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['iter_mm', 'iter_mm.*']),
    include_package_data=True,
    package_data={'iter_mm': ['py.typed'], 'iter_mm.mappings': ['*.json']},
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    license='Apache-2.0',
    cmdclass={'build_py': BuildWithConfigs},
)
