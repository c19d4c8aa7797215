"""@yr.instance and @yr.method: stateful instances that run as Ray actors."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import ray

from yuanrong._private import options as options_mod
from yuanrong._private import session, tenants, tracing
from yuanrong._private.compat import instance_state, node_env
from yuanrong._private.core import (group_members, instance_classes, placement_watch, traced_calls, vanished_pools,
                                    warm_workers)
from yuanrong._private.core.functions import check_return_nums, merge_options, wrap_result
from yuanrong._private.core.objects import unwrap_args, unwrap_kwargs
from yuanrong._private.scheduling import calls, pins
from yuanrong.config import InvokeOptions
from yuanrong.exception import GetTimeoutError, InstanceNotFoundError, InvalidOptionError

SHUTDOWN_HOOK = "__yr_shutdown__"
DEFAULT_GRACE_S = 10


def method(*args: Any, **kwargs: Any) -> Any:
    """Annotate an instance method: ``@yr.method(return_nums=2)`` makes ``.invoke`` return two refs.

    Example:
        >>> @yr.instance
        ... class Pair:
        ...     @yr.method(return_nums=2)
        ...     def split(self, a, b):
        ...         return a, b
    """
    if len(args) == 1 and not kwargs and callable(args[0]):
        return args[0]
    if args:
        raise TypeError(f"yr.method takes keywords only (return_nums=N), got positional {args!r}.")
    if "concurrency_group" in kwargs:
        raise NotImplementedError(
            "@yr.method(concurrency_group=...) is not available in yuanrong: an instance's calls share one "
            "concurrency limit, InvokeOptions.concurrency. Drop concurrency_group, or split the methods that need "
            "their own limit into another instance.")
    unknown = set(kwargs) - {"return_nums"}
    if unknown:
        raise TypeError(f"yr.method got unknown keyword(s) {sorted(unknown)}; valid ones are return_nums.")
    n = check_return_nums(kwargs.get("return_nums", 1), "@yr.method")

    def annotate(func: Callable) -> Callable:
        if not callable(func):
            raise TypeError(f"@yr.method must decorate a method, got {func!r}.")
        if n != 1 and inspect.isgeneratorfunction(func):
            raise InvalidOptionError(f"{func.__qualname__} is a generator; return_nums must not be set.",
                                     option="return_nums", value=n)
        func.__yr_return_nums__ = n
        return ray.method(num_returns=n)(func)

    return annotate


class MethodProxy:
    """One method of an instance; ``.invoke(*args)`` calls it and returns its result ref(s)."""

    __slots__ = ("_remote", "_wrap", "_name", "_traced", "_instance_id", "_label")

    def __init__(self, remote: Callable[..., Any], num_returns: Any, name: str, traced: bool = False,
                 instance_id: str = "", label: str = "") -> None:
        self._remote = remote
        self._wrap = wrap_result(num_returns)
        self._name = name
        self._label = label or name  # Class.method, for span names
        # Whether the instance's class was built traced (its methods take the trace context).
        self._traced = traced
        self._instance_id = instance_id

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method on the instance; returns immediately with the result's ref(s)."""
        if tracing.enabled:
            with traced_calls.submitting(self._label, "invoke", kwargs, {"yr.instance_id": self._instance_id},
                                         carry=self._traced) as kwargs:
                return self._call(args, kwargs)
        return self._call(args, kwargs)

    def _call(self, args: tuple, kwargs: dict) -> Any:
        if args:
            args = unwrap_args(args)
        if kwargs:
            kwargs = unwrap_kwargs(kwargs)
        return self._wrap(self._remote(*args, **kwargs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"instance methods run remotely: call .{self._name}.invoke(...) instead of "
                        f".{self._name}(...); it returns an ObjectRef.")


class InstanceProxy:
    """A handle to a running stateful instance. Call methods with ``inst.method.invoke(...)``.

    Handles can be passed to other functions and instances; all of them reach the same instance.
    """

    __slots__ = ("_handle", "_methods", "_member", "_table")

    def __init__(self, handle: Any, _member: Any = None, _table: warm_workers.MethodTable | None = None) -> None:
        self._handle = handle
        self._methods: dict[str, MethodProxy] = {}
        # A member of a yr.Group that is created only when the group is invoked.
        self._member = _member
        # An instance adopted by a warm worker: its class's methods, called through the worker's call().
        self._table = _table

    def _ray(self) -> Any:
        if self._member is not None:
            # A group member gets a new process when its group resumes after suspend().
            handle = self._member.ray_handle()
            if handle is not self._handle:
                self._handle = handle
                self._methods.clear()
        return self._handle

    def __getattr__(self, name: str) -> MethodProxy:
        if name.startswith("__") and name != SHUTDOWN_HOOK:
            raise AttributeError(name)
        if self._member is not None:
            self._ray()   # a group member's process may have changed (suspend/resume)
        try:
            return self._methods[name]
        except KeyError:
            pass
        self._ray()
        if self._table is not None:
            remote, num_returns = self._table.remote_for(self._handle, name)
            label = f"{self._table.class_name}.{name}"
            return self._methods.setdefault(name, MethodProxy(remote, num_returns, name, name in self._table.traced,
                                                              self._handle._actor_id.hex(), label))
        try:
            actor_method = getattr(self._handle, name)
        except AttributeError:
            known = sorted(m for m in getattr(self._handle, "_ray_method_num_returns", {}) if not m.startswith("__"))
            raise AttributeError(
                f"the instance has no method {name!r}; its methods are: {', '.join(known)}.") from None
        proxy = self._methods[name] = MethodProxy(actor_method.remote, actor_method._num_returns, name,
                                                  traced_calls.accepts_context(actor_method),
                                                  self._handle._actor_id.hex(), f"{_class_name(self._handle)}.{name}")
        return proxy

    @property
    def instance_id(self) -> str:
        """The instance's id (Ray actor id, hex)."""
        return self._ray()._actor_id.hex()

    @property
    def ray_handle(self) -> Any:
        """The underlying Ray ``ActorHandle``."""
        return self._ray()

    def terminate(self, is_sync: bool = False, grace_period_seconds: float = DEFAULT_GRACE_S) -> None:
        """Stop the instance. Runs its ``__yr_shutdown__(grace_period_seconds)`` first if it has one.

        Args:
            is_sync: Wait until the instance is gone before returning.
            grace_period_seconds: Time the shutdown hook may take before the instance is killed.
        """
        session.require_init()
        terminate(self._ray(), is_sync=is_sync, grace_period_seconds=grace_period_seconds)
        if self._table is not None and self._table.retries:
            warm_workers.forget_record(self._handle._actor_id.hex())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstanceProxy) and self.instance_id == other.instance_id

    def __hash__(self) -> int:
        return hash(self.instance_id)

    def __repr__(self) -> str:
        return f"<yuanrong instance {self.instance_id}>"

    def __reduce__(self):
        return (InstanceProxy, (self._ray(), None, self._table))


def _class_name(handle: Any) -> str:
    """The instance's class name, for span names (Ray keeps the module-qualified name)."""
    descriptor = getattr(handle, "_ray_actor_creation_function_descriptor", None)
    return str(getattr(descriptor, "class_name", "") or "instance").rpartition(".")[2]


def keep_alive(handle: Any) -> None:
    """Keep a created instance alive until it is terminated or the session ends.

    openYuanrong instances live until terminated or until the job ends, not until the last handle
    is dropped (Ray's default): the session keeps one handle per created instance until then.
    """
    session.current().live_handles[handle._actor_id] = handle


def terminate(handle: Any, *, is_sync: bool, grace_period_seconds: float) -> None:
    session.current().live_handles.pop(handle._actor_id, None)
    session.current().instance_cpus.pop(handle._actor_id, None)
    pins.forget_instance(handle)
    if SHUTDOWN_HOOK in getattr(handle, "_ray_method_num_returns", {}):
        hook = getattr(handle, SHUTDOWN_HOOK).remote(grace_period_seconds)
        ray.wait([hook], timeout=grace_period_seconds)
    ray.kill(handle, no_restart=True)
    instance_state.forget(handle._actor_id.hex())
    if is_sync:
        deadline = time.monotonic() + 30
        ping = handle.__ray_ready__.remote()
        while time.monotonic() < deadline:
            try:
                ray.get(ping, timeout=1)
            except ray.exceptions.RayActorError:
                return
            except ray.exceptions.GetTimeoutError:
                continue
            ping = handle.__ray_ready__.remote()


class InstanceCreator:
    """A class decorated with :func:`yuanrong.instance`.

    ``Cls.invoke(*args)`` creates an instance and returns its :class:`InstanceProxy`;
    ``Cls.options(opts)`` returns a creator with other options (``Cls`` is not changed).
    With ``InvokeOptions.name`` set, creating an instance that already exists returns it.
    """

    def __init__(self, cls: type, opts: InvokeOptions, _ray_cls: Any = None,
                 _traced: dict[str, Any] | None = None) -> None:
        self._cls = cls
        self._opts = opts
        self._resolved = options_mod.resolve(opts, for_instance=True)
        if _ray_cls is None:
            node_env.carry(cls)
        self._ray_cls = _ray_cls if _ray_cls is not None else ray.remote(cls)
        # The traced Ray class, made once for the class and every creator options() derives from it.
        self._traced_base = _traced if _traced is not None else {}
        self._traced = False
        self._ray_options = dict(self._resolved.ray_options)
        if opts.need_order and _is_async_class(cls):
            raise InvalidOptionError(
                f"InvokeOptions.need_order=True cannot hold for {cls.__qualname__}: it has async methods, which "
                f"run concurrently. Make the methods synchronous, or drop need_order.", option="need_order",
                value=True)
        if opts.concurrency == 1 and _is_async_class(cls):
            # As in openYuanrong, an async class is not serialised to one call at a time by default:
            # leave Ray's own default for async actors.
            del self._ray_options["max_concurrency"]
        self._create = self._ray_cls.options(**self._ray_options).remote
        # Which warm worker may adopt these instances (None: always a new actor).
        self._warm = warm_workers.request_for(opts, self._resolved, is_async=_is_async_class(cls))
        # The session this proxy's first call was checked and set up for: a new session (say, one that
        # traces where the last did not) sets it up again.
        self._checked: Any = None
        self._group = opts.group_name
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__doc__ = cls.__doc__
        self.__wrapped__ = cls

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to a worker sets itself up for the session it finds there.
        return {**self.__dict__, "_checked": None}

    def invoke(self, *args: Any, **kwargs: Any) -> InstanceProxy:
        """Create the instance (asynchronously) and return its handle."""
        if not session.current().initialized:
            session.require_init()
        if tracing.enabled:
            with traced_calls.submitting(self.__qualname__, "create", kwargs, {}, carry=False):
                if self._checked is not session.current():
                    self._first_call()
                return self._create_instance(args, kwargs)
        if self._checked is not session.current():
            self._first_call()
        return self._create_instance(args, kwargs)

    def _create_instance(self, args: tuple, kwargs: dict) -> InstanceProxy:
        if args:
            args = unwrap_args(args)
        if kwargs:
            kwargs = unwrap_kwargs(kwargs)
        if self._group:
            # Created with its group by yr.Group(...).invoke().
            return InstanceProxy(None, group_members.add_member(self, self._group, args, kwargs))
        if self._warm is not None:
            pools = session.current().warm_pools
            # A traced job's warm worker adopts the traced class: constructor and methods run in spans.
            traced_cls = self._traced_base.get("cls") if self._traced and tracing.enabled else None
            extra = {traced_calls.CTX_KWARG: tracing.carrier()} if traced_cls is not None else {}
            adopted = pools and warm_workers.adopt(pools, traced_cls or self._cls, self._warm, args, {**kwargs, **extra})
            if adopted:
                handle, table = adopted
                keep_alive(handle)
                return InstanceProxy(handle, _table=table)
        if self._traced and tracing.enabled:
            kwargs = {**kwargs, traced_calls.CTX_KWARG: tracing.carrier()}
        s = session.current()
        tenants.check_instance_quota(self._resolved.resources, len(s.live_handles), sum(s.instance_cpus.values()))
        handle = self._create(*args, **kwargs)
        keep_alive(handle)
        s.instance_cpus[handle._actor_id] = float(self._resolved.resources.get("CPU", 0.0))
        # (Once this session ended, it keeps nothing alive.)
        tenants.report_instances(lambda: (len(s.live_handles), sum(s.instance_cpus.values()))
                                 if session.current() is s else (0, 0.0))
        placement_watch.watch(handle, timeout_s=self._resolved.schedule_timeout_s,
                              what=f"instance of {self.__qualname__}", need=self._resolved.resources,
                              required=vanished_pools.required_labels(self._resolved.ray_options))
        return InstanceProxy(handle)

    def actor_options(self) -> dict[str, Any]:
        """Ray actor options of this creator, with a named instance's namespace filled in."""
        ray_options = dict(self._ray_options)
        if "name" in ray_options:
            # Named instances live in yuanrong's namespace, whatever Ray namespace the driver joined,
            # and a tenant's in its own ("<tenant>$<namespace>").
            ray_options["namespace"] = tenants.scoped(ray_options.get("namespace") or session.current().namespace,
                                                      what="namespace", argument="namespace")
        return ray_options

    def _first_call(self) -> None:
        ray_options = self.actor_options()
        ray_cls = self._ray_cls
        if tracing.enabled:
            ray_cls = self._trace()
        if ray_options != self._ray_options or ray_cls is not self._ray_cls:
            self._create = ray_cls.options(**ray_options).remote
        self._create = calls.remote_for(ray_cls, self._resolved, what=f"instance of {self.__qualname__}",
                                             base_options=ray_options, default=self._create, for_instance=True)
        self._checked = session.current()

    def _trace(self) -> Any:
        """Switch this creator to the traced class (a job that traces); returns its Ray class."""
        base = self._traced_base
        if "ray_cls" not in base:
            traced = traced_calls.traced_class(self._cls)
            base["cls"] = traced
            base["ray_cls"] = ray.remote(traced)
            base["carries"] = traced_calls.creation_accepts_context(traced)
        self._traced = base["carries"]
        return base["ray_cls"]

    def member_class(self) -> tuple[Any, dict[str, Any]]:
        """The Ray class yr.Group makes members from, and extra constructor kwargs (traced: the context)."""
        ray_cls = self._trace() if tracing.enabled else self._ray_cls
        return ray_cls, ({traced_calls.CTX_KWARG: tracing.carrier()} if tracing.enabled and self._traced else {})

    def options(self, invoke_options: InvokeOptions | None = None, **kwargs: Any) -> InstanceCreator:
        """Return a creator of the same class with other options (``self`` is not changed)."""
        opts = merge_options(invoke_options if invoke_options is not None else self._opts, kwargs, where=f"{self.__qualname__}.options()")
        return InstanceCreator(self._cls, opts, _ray_cls=self._ray_cls, _traced=self._traced_base)

    def get_instance(self, name: str, namespace: str = "", timeout: float = 60) -> InstanceProxy:
        """The running named instance ``name``; see :func:`yuanrong.get_instance`."""
        return get_instance(name, namespace, timeout)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.__qualname__} is a yuanrong instance class; create an instance with "
                        f"{self.__name__}.invoke(...) (it returns a handle whose methods you call with "
                        f".method.invoke(...)).")

    def __repr__(self) -> str:
        return f"<yuanrong instance class {self.__qualname__}>"


def _is_async_class(cls: type) -> bool:
    return any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
               for _, m in inspect.getmembers(cls, inspect.isfunction))


def instance(*args: Any, **kwargs: Any) -> Any:
    """Decorate a class whose instances run remotely and keep state between method calls.

    Example:
        >>> @yr.instance
        ... class Counter:
        ...     def __init__(self):
        ...         self.n = 0
        ...     def add(self, k):
        ...         self.n += k
        ...         return self.n
        >>> c = Counter.invoke()                 # doctest: +SKIP
        >>> yr.get(c.add.invoke(2))              # doctest: +SKIP
        2
    """
    if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], InvokeOptions):
        return _make_creator(args[0], None)
    if args:
        raise TypeError(f"yr.instance takes options as keywords only (invoke_options=...), got positional "
                        f"{args!r}. Write @yr.instance or @yr.instance(invoke_options=opts).")
    unknown = set(kwargs) - {"invoke_options"}
    if unknown:
        raise TypeError(f"yr.instance got unknown keyword(s) {sorted(unknown)}; the valid one is invoke_options.")
    invoke_options = kwargs.get("invoke_options")
    return lambda cls: _make_creator(cls, invoke_options)


def _make_creator(cls: Any, invoke_options: InvokeOptions | None) -> InstanceCreator:
    if not inspect.isclass(cls):
        raise TypeError(f"@yr.instance was applied to {cls!r}, which is not a class; use @yr.invoke for "
                        f"functions.")
    if invoke_options is not None and not isinstance(invoke_options, InvokeOptions):
        raise InvalidOptionError(f"@yr.instance(invoke_options={invoke_options!r}): expected a yr.InvokeOptions.",
                                 option="invoke_options", value=invoke_options)
    return InstanceCreator(instance_classes.runnable(cls, _is_async_class(cls)),
                           invoke_options or InvokeOptions())


def _namespace(namespace: str) -> str:
    if not isinstance(namespace, str):
        raise InvalidOptionError(f"namespace={namespace!r} must be a str.", option="namespace", value=namespace)
    return tenants.scoped(namespace or session.current().namespace, what="namespace", argument="namespace")


def get_instance(name: str, namespace: str = "", timeout: float = 60) -> InstanceProxy:
    """The handle of the named instance ``name``, waiting up to ``timeout`` seconds for it to exist.

    Without ``namespace``, the job's namespace is searched first; a name that exists in exactly one
    other namespace resolves to that instance, and a name in several namespaces is an error.

    Like openYuanrong, it also waits, within the same ``timeout``, for the instance to finish
    starting (its ``__init__``); ``timeout=0`` returns the handle at once.

    Raises:
        InstanceNotFoundError: No such instance appeared within ``timeout`` (it lists the names that
            do exist in that namespace).
        GetTimeoutError: The instance exists but its ``__init__`` did not finish within ``timeout``
            (also a ``TimeoutError``).
    """
    session.require_init()
    if not isinstance(name, str) or not name or not options_mod.is_name(name):
        raise InvalidOptionError(f"name={options_mod.shown(name)} must be a non-empty str of at most 255 characters "
                                 f"without control characters, as instance names are.", option="name", value=name)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 0x7FFFFFFF:
        raise InvalidOptionError(f"timeout={timeout!r} must be a finite number of seconds >= 0.", option="timeout",
                                 value=timeout)
    ns = _namespace(namespace)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            return _started(ray.get_actor(name, namespace=ns), deadline, timeout, name, ns)
        except ValueError:
            if not namespace:
                # No namespace given: an instance of that name in exactly one namespace is the one meant.
                spaces = [e["namespace"] for e in ray.util.list_named_actors(all_namespaces=True)
                          if e["name"] == name and tenants.visible(e["namespace"])]
                if len(spaces) == 1:
                    try:
                        return _started(ray.get_actor(name, namespace=spaces[0]), deadline, timeout, name, spaces[0])
                    except ValueError:
                        pass
                elif len(spaces) > 1:
                    raise InstanceNotFoundError(
                        f"instance name {name!r} exists in several namespaces ({', '.join(sorted(spaces))}) and "
                        f"none was given; pass namespace=... to choose.", name=name, namespace=ns) from None
            if time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)
    existing = sorted(e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == ns)
    raise InstanceNotFoundError(
        f"failed to get instance: no instance named {name!r} in namespace {ns!r} (waited {timeout:g}s); named instances there: "
        f"{', '.join(existing) or '(none)'}. Create it with Cls.options(yr.InvokeOptions(name={name!r})).invoke() "
        f"or pass the namespace it was created in.", name=name, namespace=ns)


def _started(handle: Any, deadline: float, timeout: float, name: str, ns: str) -> InstanceProxy:
    """``handle``'s proxy once its constructor has run (or failed), waiting until ``deadline``."""
    if timeout > 0:
        ready, _ = ray.wait([handle.__ray_ready__.remote()], timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            raise GetTimeoutError(
                f"get_instance: instance {name!r} in namespace {ns!r} exists but did not finish starting (its "
                f"__init__) within {timeout:g}s; pass a longer timeout, or timeout=0 for the handle at once.")
    return InstanceProxy(handle)
