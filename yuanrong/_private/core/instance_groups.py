"""openYuanrong instance groups (``yr.Group``): instances placed all-or-nothing that share one fate.

Instances created with ``InvokeOptions.group_name`` are only recorded; :meth:`Group.invoke` then asks
the placement engine for one bundle per member (each member's resources, pools and tier), reserves
them together as one Ray placement group, and creates every member inside its bundle. Nothing is
created unless every bundle is reserved. With ``same_lifecycle`` (the default) the members share
one fate: when one dies for good, a watcher in this process kills the others and frees the group.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import ray
from ray.util.placement_group import remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from placement import ray_adapter
from yuanrong._private import session
from yuanrong._private.compat import instance_state
from yuanrong._private.core import instances
from yuanrong._private.core.group_members import GroupMember
from yuanrong._private.core.objects import ObjectRef, get
from yuanrong._private.scheduling import pins
from yuanrong._private.scheduling.feasibility import as_placement_error
from yuanrong.config import GroupOptions
from yuanrong.exception import InvalidOptionError, YRError

_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
_WATCH_PERIOD_S = 0.5


class Group:
    """Instances created and destroyed together (openYuanrong ``yr.Group``).

    Create members with ``InvokeOptions(group_name=...)``, then call :meth:`invoke`::

        g = yr.Group("pipeline", yr.GroupOptions(timeout=60))
        opts = yr.InvokeOptions(group_name="pipeline")
        a = Stage.options(opts).invoke("decode")
        b = Stage.options(yr.InvokeOptions(group_name="pipeline", pool="cloud")).invoke("model")
        g.invoke()          # both reserved together, then both created
        g.wait()            # both constructed
        ...
        g.terminate()

    Attributes:
        group_name: The name members refer to.
        group_opts: ``timeout`` (seconds to reserve and construct the members; ``-1``: the
            members' ``schedule_timeout_ms``), ``same_lifecycle`` (members share one fate),
            ``strategy`` (PACK, SPREAD, STRICT_PACK or STRICT_SPREAD; empty means PACK).
    """

    def __init__(self, group_name: str = "", group_opts: GroupOptions | None = None) -> None:
        if not isinstance(group_name, str) or not group_name:
            raise InvalidOptionError(f"group_name={group_name!r} must be a non-empty str; members refer to it "
                                     f"with InvokeOptions.group_name.", option="group_name", value=group_name)
        opts = group_opts if group_opts is not None else GroupOptions()
        if not isinstance(opts, GroupOptions):
            raise InvalidOptionError(f"group_opts={opts!r} must be a yr.GroupOptions.", option="group_opts",
                                     value=opts)
        if opts.strategy and opts.strategy not in _STRATEGIES:
            raise InvalidOptionError(f"GroupOptions.strategy={opts.strategy!r} is invalid; use one of "
                                     f"{', '.join(_STRATEGIES)} (empty means PACK).", option="strategy",
                                     value=opts.strategy)
        if isinstance(opts.timeout, bool) or not isinstance(opts.timeout, int) or (opts.timeout <= 0
                                                                                  and opts.timeout != -1):
            raise InvalidOptionError(f"GroupOptions.timeout={opts.timeout!r} must be a positive int of seconds, "
                                     f"or -1 for the members' schedule_timeout_ms.", option="timeout",
                                     value=opts.timeout)
        self.group_name = group_name
        self.group_opts = opts
        self._members: list[GroupMember] = []
        self._pg: Any = None
        self._terminated = False
        self._suspended = False

    # -- creation ---------------------------------------------------------------------------------
    def invoke(self) -> None:
        """Reserve one bundle per member together, then create every member in its bundle.

        Raises:
            InvalidOptionError: No members, the group exists already, or a member's options cannot
                be placed as part of a group.
            PlacementError: The bundles could never be placed together, or were not reserved in
                time; nothing is created.
        """
        session.require_init()
        s = session.current()
        with s.groups_lock:
            if self.group_name in s.created_groups:
                raise InvalidOptionError(f"group {self.group_name!r} was already invoked.", option="group_name",
                                         value=self.group_name)
            members = s.pending_group_members.pop(self.group_name, [])
            if not members:
                raise InvalidOptionError(
                    f"group {self.group_name!r} has no members; create instances with "
                    f"InvokeOptions(group_name={self.group_name!r}) before invoking the group.",
                    option="group_name", value=self.group_name)
            s.created_groups[self.group_name] = self
        self._members = members
        try:
            self._reserve()
        except BaseException as exc:
            with s.groups_lock:
                s.created_groups.pop(self.group_name, None)
            for m in members:
                m.failed = str(exc)
            raise
        for i, m in enumerate(members):
            m.handle = self._create(i, m)
        if self.group_opts.same_lifecycle:
            _watcher(s).watch(self)

    def _what(self) -> str:
        return f"group {self.group_name!r}"

    def _timeout_s(self) -> float:
        if self.group_opts.timeout > 0:
            return float(self.group_opts.timeout)
        return max(m.creator._resolved.schedule_timeout_s for m in self._members)

    def _reserve(self) -> None:
        bundles, pools, tiers = [], [], []
        for i, m in enumerate(self._members):
            r = m.creator._resolved
            if r.placement or r.resource_group:
                given = sorted(r.placement) + (["resource_group_options"] if r.resource_group else [])
                raise InvalidOptionError(
                    f"{self._what()}: member {i} ({m.creator.__qualname__}) sets {', '.join(given)}; members of "
                    f"a group are placed by the group's bundles, which take only resources, pool and tier.",
                    option="group_name", value=self.group_name)
            bundle = {k: float(v) for k, v in r.resources.items() if v > 0}
            # Ray rejects an empty bundle; a member asking for nothing holds a token CPU share.
            bundles.append(bundle or {"CPU": 0.001})
            pools.append(r.pools)
            tiers.append((r.tier,) if r.tier else ())
        strategy = self.group_opts.strategy or "PACK"
        selectors = pins.group_selectors(bundles, strategy, None, what=self._what(), pools=pools,
                                                     tiers=tiers)
        if selectors is None:
            # Fits the cluster, not what is free now: pin to the members' own pools and let Ray wait.
            selectors = [m.creator._ray_options.get("label_selector") or {} for m in self._members]
        timeout = self._timeout_s()
        pg = ray_adapter.create_placement_group(
            bundles, strategy=strategy, name=f"yr-group-{self.group_name}-{uuid.uuid4().hex[:6]}",
            bundle_label_selector=selectors)
        with as_placement_error():
            ray_adapter.wait_placement_group(
                pg, timeout_s=timeout, what=self._what(), on_timeout=lambda: (
                    f"the cluster has no free room for all {len(bundles)} member(s) at once ({bundles})",
                    "bundles pending: not enough free resources at the same time"),
                next_step="nothing was created; free resources, or raise GroupOptions.timeout")
        self._pg = pg

    def _create(self, index: int, m: GroupMember) -> Any:
        creator = m.creator
        opts = {k: v for k, v in creator.actor_options().items() if k != "label_selector"}
        opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=index)
        ray_cls, context = creator.member_class()
        handle = ray_cls.options(**opts).remote(*m.args, **m.kwargs, **context)
        instances.keep_alive(handle)
        return handle

    # -- life -------------------------------------------------------------------------------------
    def wait(self) -> None:
        """Block until every member is constructed.

        Raises:
            YRError: The group was not invoked.
            Exception: A member's constructor raised (its own exception, as a ``YRInvokeError``),
                or ``InstanceDiedError`` when a member died; the whole group is then terminated
                (all or nothing).
            TimeoutError: Not constructed within the group's timeout; the group is terminated.
        """
        session.require_init()
        if self._pg is None:
            raise YRError(f"{self._what()} has not been invoked; call invoke() before wait().")
        try:
            get([ObjectRef(m.handle.__ray_ready__.remote()) for m in self._members], timeout=self._timeout_s())
        except BaseException:
            self.terminate()
            raise

    def terminate(self) -> None:
        """Stop every member (their ``__yr_shutdown__`` hooks run first) and free the group's resources."""
        session.require_init()
        s = session.current()
        _watcher(s).unwatch(self)
        _forget(s, self)
        if self._terminated:
            return
        self._terminated = True
        self._kill_members(grace=True)
        for m in self._members:
            if m.saved is not None:   # terminated while suspended: the kept state goes too
                m.saved, m.failed = None, "the group was terminated while suspended"

    def _kill_members(self, *, grace: bool) -> None:
        for m in self._members:
            if m.handle is None:
                continue
            try:
                if grace:
                    instances.terminate(m.handle, is_sync=False, grace_period_seconds=instances.DEFAULT_GRACE_S)
                else:
                    session.current().live_handles.pop(m.handle._actor_id, None)
                    ray.kill(m.handle, no_restart=True)
            except Exception:  # noqa: BLE001 - a member already gone is what we want
                pass
        if self._pg is not None:
            try:
                remove_placement_group(self._pg)
            except Exception:  # noqa: BLE001 - already removed
                pass

    @property
    def instances(self) -> list[Any]:
        """Handles of the members, in creation order (created once :meth:`invoke` returns)."""
        return [instances.InstanceProxy(m.handle) for m in self._members if m.handle is not None]

    def suspend(self) -> None:
        """Stop every member and free the group's resources, keeping each member's state.

        Each member's state (``__getstate__()``, else its attributes) is taken, then the members
        are terminated (their ``__yr_shutdown__`` hooks run) and the reservation is freed. Handles
        stay valid; calling them raises until :meth:`resume`.
        """
        session.require_init()
        if self._terminated or self._pg is None:
            raise YRError(f"{self._what()} is not running; only an invoked, unterminated group can be suspended.")
        if self._suspended:
            return
        s = session.current()
        _watcher(s).unwatch(self)
        blobs = get([ObjectRef(m.handle.__ray_call__.remote(instance_state.snapshot)) for m in self._members],
                    timeout=self._timeout_s())
        self._kill_members(grace=True)
        for m, blob in zip(self._members, blobs):
            m.handle, m.saved = None, blob
        self._pg = None
        self._suspended = True

    def resume(self) -> None:
        """Reserve the group again, start every member and give it back the state it had.

        The members run their constructors with the original arguments, then get their saved
        state (``__setstate__``, else their attributes); their instance ids are new.

        Raises:
            PlacementError: The bundles could not be reserved again within the group's timeout;
                the group stays suspended and can be resumed later.
        """
        session.require_init()
        if not self._suspended:
            raise YRError(f"{self._what()} is not suspended; call suspend() first.")
        self._reserve()
        self._terminated = False
        handles = [self._create(i, m) for i, m in enumerate(self._members)]
        restored = [h.__ray_call__.remote(instance_state.restore, m.saved) for h, m in zip(handles, self._members)]
        for m, h in zip(self._members, handles):
            m.handle, m.saved = h, None
        self._suspended = False
        if self.group_opts.same_lifecycle:
            _watcher(session.current()).watch(self)
        get([ObjectRef(r) for r in restored], timeout=self._timeout_s())

    def __repr__(self) -> str:
        state = ("terminated" if self._terminated else "suspended" if self._suspended
                 else "created" if self._pg is not None else "pending")
        return f"<yuanrong Group {self.group_name!r} {state} members={len(self._members)}>"


def _forget(s: session.Session, group: Group) -> None:
    with s.groups_lock:
        if s.created_groups.get(group.group_name) is group:
            del s.created_groups[group.group_name]


class _FateWatcher:
    """One daemon thread per session: when a member of a same-lifecycle group is dead for good
    (Ray's actor table says DEAD, i.e. no restart left), the group's other members are killed too."""

    def __init__(self, s: session.Session) -> None:
        self._session = s
        self._groups: set[Group] = set()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, group: Group) -> None:
        with self._cv:
            self._groups.add(group)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="yr-group-fate", daemon=True)
                self._thread.start()

    def unwatch(self, group: Group) -> None:
        with self._cv:
            self._groups.discard(group)

    def _run(self) -> None:
        from ray._private import state

        while True:
            with self._cv:
                groups = list(self._groups)
                if not groups or not ray.is_initialized():
                    # Decided under the lock, so a group watched from now on starts a new thread.
                    self._groups.clear()
                    self._thread = None
                    return
            for g in groups:
                try:
                    dead = [m for m in g._members if m.handle is not None
                            and (state.actors(m.handle._actor_id.hex()) or {}).get("State") == "DEAD"]
                except Exception:  # noqa: BLE001 - the cluster is going away; the next pass decides
                    continue
                if dead:
                    self.unwatch(g)
                    g._terminated = True
                    _forget(self._session, g)
                    g._kill_members(grace=False)
            time.sleep(_WATCH_PERIOD_S)


def _watcher(s: session.Session) -> _FateWatcher:
    with s.groups_lock:
        if s.group_watcher is None:
            s.group_watcher = _FateWatcher(s)
        return s.group_watcher
