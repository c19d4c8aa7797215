"""openYuanrong's ``yr.decorator`` modules, where its programs find the proxy classes by path.

openYuanrong programs name the proxies by module, for example in a type annotation
``task_summary: yr.decorator.instance_proxy.InstanceProxy``, which Python evaluates when the
function is defined. The classes are yuanrong's own (:class:`yuanrong.InstanceProxy`, ...);
these modules only give them openYuanrong's addresses.
"""

from yuanrong.decorator import function_proxy, instance_proxy

__all__ = ["function_proxy", "instance_proxy"]
