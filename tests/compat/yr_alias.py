"""``import yr`` (and ``yr.config``, ``yr.exception``, ...) resolved to yuanrong.

Installed by the ``yr`` package the system-test runner puts on ``PYTHONPATH`` (so in the driver
and in every worker), so that openYuanrong's own programs and tests run against yuanrong without a
line of them edited.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys


class _YrAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``yr`` and ``yr.X`` as the modules ``yuanrong`` and ``yuanrong.X``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "yr" and not fullname.startswith("yr."):
            return None
        target_name = "yuanrong" + fullname[2:]
        if importlib.util.find_spec(target_name) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec):
        module = importlib.import_module("yuanrong" + spec.name[2:])
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module):
        """The module is yuanrong's own, already executed."""


def install() -> None:
    """Put the alias first on the import path (once)."""
    if not any(isinstance(f, _YrAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, _YrAlias())


install()
