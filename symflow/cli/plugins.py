"""``symflow --plugin FILE.py|MODULE ...``: your own systems on the command line.

A plugin is a Python file or an importable module that registers systems when imported::

    # my_systems.py
    import symflow.systems as S
    S.register_system(S.from_hamiltonian(H, dof=2, name="double_well"), overwrite=True)

    symflow --plugin my_systems.py simulate double_well --n 200 -o well.h5
    symflow --plugin my_systems.py train node --data well.h5 --out runs/well
    symflow --plugin my_systems.py diagnose runs/well --poincare -o report/

Plugins are loaded before the command runs, from ``--plugin`` (repeatable) and from the environment
variable ``SYMFLOW_PLUGINS`` (paths or module names separated by ``os.pathsep``). Nothing is ever
imported because a data file or a run directory names a system: code runs only when you ask for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

from .main import CLIError

ENV = "SYMFLOW_PLUGINS"


def plugin_names(given: Sequence[str] | None) -> list[str]:
    """The plugins to load: ``SYMFLOW_PLUGINS`` first, then ``--plugin`` options, without repeats."""
    from_env = [p for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]
    return list(dict.fromkeys([*from_env, *(given or [])]))


def load_plugins(given: Sequence[str] | None) -> list[str]:
    """Import every plugin; a missing file or a failing import is a one-line :class:`CLIError`."""
    loaded = []
    for name in plugin_names(given):
        try:
            if name.endswith(".py") or os.sep in name or "/" in name:
                _load_file(Path(name))
            else:
                importlib.import_module(name)
        except CLIError:
            raise
        except Exception as err:
            raise CLIError(f"--plugin {name}: {type(err).__name__}: {' '.join(str(err).split())}") from err
        loaded.append(name)
    return loaded


def _load_file(path: Path) -> None:
    if not path.is_file():
        raise CLIError(f"--plugin {path}: no such file (give a .py file or an importable module name)")
    resolved = path.resolve()
    module_name = f"symflow_plugin_{resolved.stem}_{zlib.crc32(str(resolved).encode()):08x}"
    if module_name in sys.modules:  # loaded already in this process (e.g. by an earlier main() call)
        return
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise CLIError(f"--plugin {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
