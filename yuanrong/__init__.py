"""yuanrong: openYuanrong's programming model on Ray, for the edge-cloud continuum.

Write ``import yuanrong as yr`` where an openYuanrong program has ``import yr``::

    import yuanrong as yr

    yr.init()

    @yr.invoke
    def add(a, b):
        return a + b

    print(yr.get(add.invoke(1, 2)))   # 3
    yr.finalize()
"""

from yuanrong._private.compat.exiting import exit
from yuanrong._private.compat.instance_state import load_state, save_state
from yuanrong._private.compat.kv import (
    CacheType,
    ExistenceOpt,
    GetParam,
    GetParams,
    MSetParam,
    SetParam,
    WriteMode,
    kv_del,
    kv_get,
    kv_get_with_param,
    kv_keys,
    kv_m_write_tx,
    kv_read,
    kv_set,
    kv_write,
    kv_write_with_param,
)
from yuanrong._private.compat.streams import (
    Consumer,
    Element,
    Producer,
    ProducerConfig,
    StreamFullError,
    SubscriptionConfig,
    SubscriptionType,
    create_stream_consumer,
    create_stream_producer,
    delete_stream,
    query_global_consumers_num,
    query_global_producers_num,
)
from yuanrong._private.compat.unsupported import (
    cpp_function,
    cpp_instance_class,
    go_function,
    go_instance_class,
    java_function,
    java_instance_class,
)
from yuanrong._private.core.functions import FunctionProxy, invoke
from yuanrong._private.core.instance_groups import Group
from yuanrong._private.core.instances import (
    InstanceCreator,
    InstanceProxy,
    MethodProxy,
    get_instance,
    instance,
    method,
)
from yuanrong._private.core.named_instances import kill_instance, list_named_instances
from yuanrong._private.core.objects import ObjectRef, ObjectRefGenerator
from yuanrong._private.core.objects import cancel, get, put, wait
from yuanrong._private.scheduling.resource_groups import ResourceGroup
from yuanrong._private.scheduling.resource_groups import create as create_resource_group
from yuanrong._private.scheduling.resource_groups import remove as remove_resource_group
from yuanrong._private.scheduling.resource_groups import resources
from yuanrong._private.session import ClientInfo, finalize, init, is_initialized
from yuanrong._private.tenants import set_quota as set_tenant_quota
from yuanrong import auth, fcc, metrics, trace
from yuanrong.fcc import FunctionGroupHandler, create_function_group, get_function_group_context
from yuanrong.affinity import Affinity, AffinityKind, AffinityScope, AffinityType, LabelOperator, OperatorType
from yuanrong.config import (
    Config,
    FunctionGroupContext,
    FunctionGroupOptions,
    GroupOptions,
    InvokeOptions,
    ResourceGroupOptions,
)
from yuanrong.exception import (
    AuthenticationError,
    ClusterConfigError,
    FunctionQueueFullError,
    GetTimeoutError,
    InstanceDiedError,
    InstanceNotFoundError,
    InvalidOptionError,
    InvokeCancelledError,
    NotInitializedError,
    ObjectLostError,
    PermissionDeniedError,
    PlacementError,
    QuotaExceededError,
    YRError,
    YRInvokeError,
)

# openYuanrong programs also reach the proxies by module path (yr.decorator.instance_proxy.InstanceProxy).
from yuanrong import decorator  # noqa: E402  (after the proxies it re-exports)

# openYuanrong's newer names for the same proxies.
StatelessFunction = FunctionProxy
StatefulInstance = InstanceProxy
StatefulInstanceCreator = InstanceCreator

__version__ = "0.1.0"

__all__ = [
    "Affinity",
    "AffinityKind",
    "AffinityScope",
    "AffinityType",
    "AuthenticationError",
    "CacheType",
    "ClientInfo",
    "ClusterConfigError",
    "Config",
    "Consumer",
    "Element",
    "ExistenceOpt",
    "FunctionGroupContext",
    "FunctionGroupHandler",
    "FunctionGroupOptions",
    "FunctionProxy",
    "FunctionQueueFullError",
    "GetParam",
    "GetParams",
    "GetTimeoutError",
    "Group",
    "GroupOptions",
    "InstanceCreator",
    "InstanceDiedError",
    "InstanceNotFoundError",
    "InstanceProxy",
    "InvalidOptionError",
    "InvokeCancelledError",
    "InvokeOptions",
    "LabelOperator",
    "MSetParam",
    "MethodProxy",
    "NotInitializedError",
    "ObjectLostError",
    "ObjectRef",
    "ObjectRefGenerator",
    "OperatorType",
    "PermissionDeniedError",
    "PlacementError",
    "Producer",
    "ProducerConfig",
    "QuotaExceededError",
    "ResourceGroup",
    "ResourceGroupOptions",
    "SetParam",
    "StatefulInstance",
    "StatefulInstanceCreator",
    "StatelessFunction",
    "StreamFullError",
    "SubscriptionConfig",
    "SubscriptionType",
    "WriteMode",
    "YRError",
    "YRInvokeError",
    "cancel",
    "cpp_function",
    "cpp_instance_class",
    "create_function_group",
    "create_resource_group",
    "create_stream_consumer",
    "create_stream_producer",
    "delete_stream",
    "exit",
    "fcc",
    "finalize",
    "get",
    "get_function_group_context",
    "get_instance",
    "go_function",
    "go_instance_class",
    "init",
    "instance",
    "invoke",
    "is_initialized",
    "java_function",
    "java_instance_class",
    "kill_instance",
    "kv_del",
    "kv_get",
    "kv_get_with_param",
    "kv_keys",
    "kv_m_write_tx",
    "kv_read",
    "kv_set",
    "kv_write",
    "kv_write_with_param",
    "list_named_instances",
    "load_state",
    "method",
    "put",
    "query_global_consumers_num",
    "query_global_producers_num",
    "remove_resource_group",
    "resources",
    "save_state",
    "set_tenant_quota",
    "wait",
]
