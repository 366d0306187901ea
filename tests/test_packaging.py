"""The distribution layout: folder mapping, package list, CLI registration, README/CI agreement."""

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_subpackage_is_listed_in_pyproject():
    cfg = PYPROJECT["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for prefix, folder in cfg["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([prefix, *rel.parts]) if rel.parts else prefix)
    assert found == listed, f"sub-packages missing from pyproject packages: {sorted(found - listed)}"


@pytest.mark.parametrize("pkg", ["theory", "estimators"])
def test_leaf_packages_do_not_import_verify(pkg):
    for path in (ROOT / pkg).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
                if node.level >= 2 and (node.module or "").startswith("verify"):
                    names = ["limen.verify"]
            for name in names:
                assert not name.startswith("limen.verify"), f"{path} imports {name}"
                if pkg == "theory":
                    assert name.split(".")[0] != "torch", f"{path} imports torch"


def test_cli_registers_only_existing_modules():
    from limen.verify import cli

    tables = [cli.COMMANDS, cli.RUN_TARGETS, cli.BENCH_TARGETS]
    for table in tables:
        for name, (module, _) in table.items():
            if module is None:
                continue
            mod = importlib.import_module(module)
            assert callable(mod.add_arguments) and callable(mod.main), f"{module} lacks add_arguments/main"


def test_ci_runs_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    install_and_run, test_cmd = blocks[0].strip(), blocks[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines(), "CI must call README's exact test command"
    for part in install_and_run.split("&&")[:2]:
        assert part.strip().replace("pip install", "python -m pip install") in ci
