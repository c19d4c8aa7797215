"""openYuanrong features that have no counterpart on Ray: each raises a clear NotImplementedError."""

from __future__ import annotations

from typing import Any, NoReturn


def _unsupported(api: str, why: str) -> NoReturn:
    raise NotImplementedError(f"yr.{api} is not available in yuanrong: {why}.")


_CROSS_LANGUAGE = "cross-language calls need openYuanrong's C++/Java/Go runtimes; on Ray, call such code " \
                  "from Python (e.g. through its Python bindings or a subprocess)"


def cpp_function(*args: Any, **kwargs: Any) -> NoReturn:
    """Not available: cross-language calls."""
    _unsupported("cpp_function", _CROSS_LANGUAGE)


def cpp_instance_class(*args: Any, **kwargs: Any) -> NoReturn:
    """Not available: cross-language calls."""
    _unsupported("cpp_instance_class", _CROSS_LANGUAGE)


def java_function(*args: Any, **kwargs: Any) -> NoReturn:
    """Not available: cross-language calls."""
    _unsupported("java_function", _CROSS_LANGUAGE)


def java_instance_class(*args: Any, **kwargs: Any) -> NoReturn:
    """Not available: cross-language calls."""
    _unsupported("java_instance_class", _CROSS_LANGUAGE)


def go_function(*args: Any, **kwargs: Any) -> NoReturn:
    """Not available: cross-language calls."""
    _unsupported("go_function", _CROSS_LANGUAGE)


def go_instance_class(*args: Any, **kwargs: Any) -> NoReturn:
    """Not available: cross-language calls."""
    _unsupported("go_instance_class", _CROSS_LANGUAGE)
