"""Running the installed ``yr`` command in end-to-end tests, in an environment of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

BIN = Path(sys.executable).parent
"""Where this virtualenv's ``yr`` is."""


def yr(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``yr ARGS`` and capture its output."""
    return subprocess.run([str(BIN / "yr"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def cli_env(state: Path, *, drop: Iterable[str] = (), **extra: str) -> dict[str, str]:
    """This process's environment without addresses of other clusters (nor the variables in
    ``drop``), with this virtualenv first on ``PATH``, ``state`` as ``YR_STATE_DIR`` and ``extra``."""
    dropped = {"RAY_ADDRESS", "YR_ADDRESS", *drop}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", YR_STATE_DIR=str(state), **extra)
    return env
