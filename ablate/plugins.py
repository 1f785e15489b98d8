"""Plugins: a researcher's own modules, imported before any config is checked.

A plugin is a module path (``my_lab.aligners``) or a ``.py`` file (``./extra/align.py``) whose
import registers new parts with ``model.registry.register``; the new names are then valid in
study files and ``--set`` like the built-in ones. Study files list them under ``[study]
plugins`` (files relative to the study file's folder), the command line with ``--plugin``
(relative to the working directory), and worker processes get the resolved list.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from ablate.errors import PluginError

FILE_MODULE_PREFIX = "ablate_plugin_"
# A plugin file imported once per process: a second import would register its parts again.
_FILES: dict[Path, ModuleType] = {}


def is_file_spec(spec: str) -> bool:
    """A path (``x.py``, ``dir/x``, ``~/x.py``) rather than a dotted module name."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec or spec.startswith("~")


def resolve(spec: str, base: Path | None = None) -> str:
    """``spec`` as it is imported: a file becomes its absolute path (relative ones against
    ``base``, default the working directory); a module name stays as it is."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(f"plugin {spec!r} is not a module name or a .py file")
    spec = spec.strip()
    if not is_file_spec(spec):
        return spec
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return str(path.resolve())


def load_plugins(specs: Iterable[str], base: Path | None = None) -> tuple[str, ...]:
    """Import every plugin; returns the resolved specs. Any failure is one PluginError line."""
    resolved = tuple(resolve(spec, base) for spec in specs)
    for spec in resolved:
        if is_file_spec(spec):
            _import_file(Path(spec))
        else:
            _import_module(spec)
    return resolved


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise PluginError(f"plugin {name!r}: no module named {exc.name!r}") from None
        raise PluginError(f"plugin {name!r} failed to import: {_first_line(exc)}") from None
    except (Exception, SystemExit) as exc:  # the plugin's own code: its error, not ours
        raise PluginError(f"plugin {name!r} failed to import: {_first_line(exc)}") from None


def _import_file(path: Path) -> ModuleType:
    if path in _FILES:
        return _FILES[path]
    if path.is_dir():
        raise PluginError(f"plugin {path} is a directory, not a .py file")
    if not path.is_file():
        raise PluginError(f"plugin file not found: {path}")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    name = f"{FILE_MODULE_PREFIX}{path.stem.replace('-', '_')}_{digest}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"plugin {path} cannot be imported as Python source")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickle look their module up here
    try:
        module_spec.loader.exec_module(module)
    # Syntax errors and the plugin's own exceptions alike; a sys.exit() would otherwise end
    # ablate itself, silently and with the plugin's exit code.
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise PluginError(f"plugin {path} failed to import: {_first_line(exc)}") from None
    _FILES[path] = module
    return module


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r}); a plugin must only register parts"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
