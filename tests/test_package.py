"""``pip install .`` gives the `genre_model` package and the ``genre-model`` command, usable from any directory; the
packages' modules import each other without cycles."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genre_model.loading import WEIGHTS_DIR
from tests.conftest import chirp

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_gives_a_working_genre_model_command(tmp_path, write_audio):
    source, target = tmp_path / "source", tmp_path / "site"  # a copy: setuptools builds inside the source tree
    shutil.copytree(ROOT / "genre_model", source / "genre_model", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    # --no-deps: this environment has the dependencies already
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target"]
    install = [*pip, str(target), str(source)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    assert (target / "genre_model" / "inference.py").is_file() and not (target / "train").exists()
    clip = write_audio("elsewhere.wav", chirp(4.0))
    env = {**os.environ, "PYTHONPATH": str(target)}
    command = [
        str(target / "bin" / "genre-model"),
        "predict",
        "--json",
        "--model",
        str(WEIGHTS_DIR / "chunk-cnn"),
        str(clip),
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert line["file"] == str(clip) and line["genre"] in line["probabilities"]
    loaded_from = subprocess.run(
        [sys.executable, "-c", "import genre_model; print(genre_model.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    assert loaded_from.startswith(str(target))  # the installed copy, not the checkout


def imports(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` -> the modules of ``package`` it imports anywhere (in functions and under
    ``TYPE_CHECKING`` too)."""
    files = (ROOT / package).rglob("*.py")
    paths = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f for f in files}
    graph = {}
    for name, path in paths.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                anchor = here[: len(here) + 1 - node.level] if node.level else []
                base = ".".join(anchor + ([node.module] if node.module else []))
                graph[name] |= {f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names}
        graph[name] &= paths.keys() - {name}
    return graph


@pytest.mark.parametrize("package", ["genre_model", "train"])
def test_no_import_cycles(package):
    graph = imports(package)

    def reachable(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            if (module := todo.pop()) not in seen:
                seen.add(module)
                todo += graph[module]
        return seen

    assert [module for module in graph if module in reachable(module)] == []
