"""``yr.decorator.instance_proxy``: the stateful-instance proxies under openYuanrong's module path."""

from yuanrong._private.core.instances import InstanceCreator, InstanceProxy, MethodProxy

__all__ = ["InstanceCreator", "InstanceProxy", "MethodProxy"]
