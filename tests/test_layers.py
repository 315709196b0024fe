"""The layering is enforced: gui -> procedures -> hardware layer, never back (import-linter).

The package-dir layout (docs/decisions/0001) puts `procedures/` and `gui/` outside the
`ionto_instruments/` folder, which import-linter's graph builder does not follow; the test
lays the installed package out as one tree of symlinks and runs `lint-imports` on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "pyproject.toml"


def _package_tree(tmp_path: Path) -> Path:
    """Lay out `ionto_instruments` as installed (package-dir mapping) under tmp_path."""
    mapping = tomllib.loads(CONFIG.read_text())["tool"]["setuptools"]["package-dir"]
    top = tmp_path / "ionto_instruments"
    top.mkdir()
    for entry in (ROOT / mapping["ionto_instruments"]).iterdir():
        if entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for package, folder in mapping.items():
        parts = package.split(".")
        if len(parts) == 2 and not (top / parts[1]).exists():
            (top / parts[1]).symlink_to(ROOT / folder)
    return tmp_path


def _hardware_modules() -> set[str]:
    """The top-level modules and packages of the hardware layer (ionto_instruments/ folder)."""
    names = {p.stem for p in (ROOT / "ionto_instruments").glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in (ROOT / "ionto_instruments").iterdir()
              if (p / "__init__.py").exists()}
    return names | {"sim_configs"}


def test_every_hardware_module_is_in_the_layer_contracts():
    contracts = tomllib.loads(CONFIG.read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")
    bottom = {name.strip() for name in layers["layers"][-1].split(":")}
    forbidden = next(c for c in contracts if c["type"] == "forbidden")
    sources = {m.removeprefix("ionto_instruments.") for m in forbidden["source_modules"]}
    missing = _hardware_modules() - bottom
    assert not missing, f"add {sorted(missing)} to the hardware layer in pyproject.toml"
    assert _hardware_modules() - sources == set(), "add them to the forbidden contract too"


@pytest.mark.slow  # a subprocess that builds the import graph: a few seconds
def test_import_linter_contracts_are_kept(tmp_path):
    tree = _package_tree(tmp_path)
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([str(lint), "--no-cache", str(CONFIG)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout
