"""The dependency rule (README, "Layout"), kept by import-linter's contracts in
pyproject.toml: datasets -> consent -> registry -> access -> (audit | outbox), and the
portal, the desk and the consent API independent of each other."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "audit", "outbox", "access", "registry", "consent", "datasets")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# One import against the rule per boundary: (planted module, what it imports).
WRONG_WAY = [
    ("registry/wrong_way.py", "consent.engine"),          # registry knows no consent
    ("access/wrong_way.py", "registry.models"),           # access is below the registry
    ("audit/wrong_way.py", "access.roles"),               # the ledger knows no one above it
    ("outbox/wrong_way.py", "audit.ledger"),              # audit and outbox are independent
    ("consent/wrong_way.py", "datasets.exports"),         # consent never imports datasets
    ("consent/portal/wrong_way.py", "consent.desk.forms"),  # interfaces share the domain only
]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first, so a copied tree is analysed rather than the installed one.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root)})


def test_the_code_keeps_the_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.fixture
def tree_with_wrong_imports(tmp_path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "templates", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for module, imported in WRONG_WAY:
        (tmp_path / module).write_text(f"import {imported}  # against the layers\n")
    return tmp_path


def test_an_import_against_the_layers_fails_the_build(tree_with_wrong_imports):
    result = lint_imports(tree_with_wrong_imports)
    assert result.returncode != 0
    assert "0 kept, 2 broken" in result.stdout
    for module, imported in WRONG_WAY:
        importer = module.removesuffix(".py").replace("/", ".")
        assert f"{importer} -> {imported}" in result.stdout, (importer, result.stdout)
