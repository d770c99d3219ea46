"""CI runs the three checkers configured in pyproject.toml, and each one fails on a violation.

* import-linter: layers qstore_client <- qstore <- qstore_server, a client free of the engine's
  dependencies, pure quantum-state primitives, and no import cycles (function-local imports
  included: grimp reads every import statement, wherever it stands);
* ruff: lint and import order over qstore/, server/, client/, tests/ and benchmarks/;
* mypy --strict on the client package and the engine's public API modules.

Each "catches" test copies the packages to a temporary directory, plants one violation and
shows the same checker and configuration rejecting it.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"qstore": ROOT / "qstore", "qstore_server": ROOT / "server" / "qstore_server",
            "qstore_client": ROOT / "client" / "qstore_client"}
MYPY_STRICT = ["-p", "qstore_client", *(arg for module in (
    "qstore.errors", "qstore.runtime", "qstore.lazy", "qstore.circuits.backend", "qstore.circuits.registry",
    "qstore.circuits.gradients", "qstore.training.registry", "qstore.training.optimizers", "qstore.training.qng",
    "qstore.training.tunneling_optimizer", "qstore.circuits.noise", "qstore.circuits.density_matrix",
    "qstore.circuits.mitigation", "qstore.circuits.shots", "qstore.training.autoencoder") for arg in ("-m", module))]
LAZY_PACKAGES = [ROOT / "qstore" / "training" / "__init__.py", ROOT / "qstore" / "federated" / "__init__.py"]


def _run(args: list[str], cwd: Path, pythonpath: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _lint_imports(root: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    return _run([sys.executable, "-c", code], root, pythonpath)


def _copy_tree(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The three packages and pyproject.toml, laid out as in the repository."""
    for src in PACKAGES.values():
        dst = tmp_path / src.relative_to(ROOT)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path, [tmp_path, tmp_path / "server", tmp_path / "client"]


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


# -- the tree passes -------------------------------------------------------------------------
def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT, [ROOT, ROOT / "server", ROOT / "client"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_passes() -> None:
    result = _run([sys.executable, "-m", "ruff", "check", "--no-cache", "qstore", "server", "client", "tests",
                   "benchmarks"], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes() -> None:
    result = _run([sys.executable, "-m", "mypy", *MYPY_STRICT], ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# -- each checker catches a planted violation --------------------------------------------------
def test_import_linter_catches_the_client_importing_the_engine(tmp_path: Path) -> None:
    root, path = _copy_tree(tmp_path)
    _append(root / "client" / "qstore_client" / "types.py", "\nimport qstore.records  # noqa\n")
    result = _lint_imports(root, path)
    assert result.returncode != 0
    assert "Layers" in result.stdout and "BROKEN" in result.stdout
    assert "qstore_client.types -> qstore.records" in result.stdout


def test_import_linter_catches_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    """The registry's old shape: the base module building its subclasses by name."""
    root, path = _copy_tree(tmp_path)
    _append(root / "qstore" / "circuits" / "backend.py",
            "\n\ndef make_default() -> Backend:\n    from .statevector import StatevectorBackend\n\n"
            "    return StatevectorBackend()\n")
    result = _lint_imports(root, path)
    assert result.returncode != 0
    assert "No cycles are allowed in qstore.circuits" in result.stdout


def test_ruff_catches_unsorted_and_unused_imports(tmp_path: Path) -> None:
    root, _ = _copy_tree(tmp_path)
    bad = root / "qstore" / "planted.py"
    bad.write_text('"""A planted violation."""\nimport sys\nimport os\n')
    result = _run([sys.executable, "-m", "ruff", "check", "--no-cache", str(bad.relative_to(root))], root)
    assert result.returncode != 0
    assert "I001" in result.stdout and "F401" in result.stdout


def test_mypy_catches_an_untyped_client_function(tmp_path: Path) -> None:
    root, _ = _copy_tree(tmp_path)
    _append(root / "client" / "qstore_client" / "types.py", "\n\ndef planted(x):\n    return x\n")
    result = _run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), "-p", "qstore_client"], root)
    assert result.returncode != 0
    assert "types.py" in result.stdout and "no-untyped-def" in result.stdout


# -- small structural rules, checked on the source ---------------------------------------------
@pytest.mark.parametrize("init", LAZY_PACKAGES, ids=lambda p: p.parent.name)
def test_lazy_namespaces_declare_what_they_export(init: Path) -> None:
    """The TYPE_CHECKING imports (what type checkers see) and the lazy table (what runs) agree."""
    tree = ast.parse(init.read_text())
    typed: dict[str, set[str]] = {}
    table: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            typed.setdefault(node.module, set()).update(a.name for a in node.names)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports":
            mapping = node.args[1]
            assert isinstance(mapping, ast.Dict)
            for key, value in zip(mapping.keys, mapping.values):
                assert isinstance(key, ast.Constant) and isinstance(value, ast.Tuple)
                table[key.value] = {elt.value for elt in value.elts if isinstance(elt, ast.Constant)}
    assert typed and typed == table


def _calls(paths: list[Path], predicate: object) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and predicate(node):  # type: ignore[operator]
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


ENGINE = sorted(p for d in ("circuits", "training", "federated") for p in (ROOT / "qstore" / d).glob("*.py"))


def test_capabilities_are_declared_not_probed() -> None:
    """Backends say what they support (``supports_adjoint`` ...) and databases implement
    ``QStoreAPI``; nothing asks ``hasattr`` for one of their methods."""
    from qstore.circuits import StatevectorBackend
    from qstore_client.api import CollectionAPI, QStoreAPI

    methods = set(dir(StatevectorBackend)) | set(dir(QStoreAPI)) | set(dir(CollectionAPI))

    def probes(node: ast.Call) -> bool:
        return (getattr(node.func, "id", None) == "hasattr" and len(node.args) == 2
                and isinstance(node.args[1], ast.Constant) and node.args[1].value in methods)

    assert _calls(ENGINE, probes) == []


def test_engine_errors_are_built_one_way() -> None:
    """``raise error(code, message)``: the code picks the class, so no class is built by hand."""
    import qstore_client.errors as errors

    classes = {name for name in dir(errors) if isinstance(getattr(errors, name), type)
               and issubclass(getattr(errors, name), errors.QStoreError)}
    assert _calls(ENGINE + [ROOT / "qstore" / "vqe.py"], lambda n: getattr(n.func, "id", None) in classes) == []
