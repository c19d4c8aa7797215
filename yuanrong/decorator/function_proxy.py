"""``yr.decorator.function_proxy``: the stateless-function proxy under openYuanrong's module path."""

from yuanrong._private.core.functions import FunctionProxy

__all__ = ["FunctionProxy"]
