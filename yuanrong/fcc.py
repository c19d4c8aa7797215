"""openYuanrong's function groups: ``yr.fcc.create_function_group`` and ``get_function_group_context``.

Example:
    >>> opts = yr.FunctionGroupOptions(cpu=1000, memory=1000, scheduling_affinity_each_bundle_size=2)  # doctest: +SKIP
    >>> refs = yr.fcc.create_function_group(work, args=("x",), group_size=4, options=opts)  # doctest: +SKIP
    >>> yr.get(refs)  # four results, one per member, in rank order  # doctest: +SKIP
"""

from yuanrong._private.core.function_groups import (
    FunctionGroupHandler,
    create_function_group,
    get_function_group_context,
)

__all__ = ["FunctionGroupHandler", "create_function_group", "get_function_group_context"]
