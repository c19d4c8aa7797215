"""Instances recorded for a ``yr.Group`` before the group is invoked.

``Cls.options(InvokeOptions(group_name=...)).invoke()`` only records a :class:`GroupMember` here;
``yr.Group(...).invoke()`` (:mod:`.instance_groups`) later takes the group's members and creates
them together. The records live in this process's :class:`~yuanrong._private.session.Session`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from yuanrong._private import session
from yuanrong.exception import InvalidOptionError, YRError


@dataclasses.dataclass(eq=False)
class GroupMember:
    """One instance of a group: how to create it, and its Ray handle once created."""

    creator: Any          # the InstanceCreator (its class and resolved options)
    args: tuple
    kwargs: dict
    group_name: str
    handle: Any = None
    failed: str | None = None
    saved: bytes | None = None     # its state while the group is suspended

    def ray_handle(self) -> Any:
        if self.handle is not None:
            return self.handle
        if self.failed:
            raise YRError(f"this instance of group {self.group_name!r} was never created: {self.failed}")
        if self.saved is not None:
            raise YRError(f"group {self.group_name!r} is suspended: its instances are stopped and their state "
                          f"kept; call resume() on the group before calling them.")
        raise YRError(
            f"this instance belongs to group {self.group_name!r}, which has not been created yet; "
            f"call yr.Group({self.group_name!r}, ...).invoke() first (members are created together).")


def add_member(creator: Any, group_name: str, args: tuple, kwargs: dict) -> GroupMember:
    """Record an instance to be created by its group's ``invoke``."""
    member = GroupMember(creator, args, kwargs, group_name)
    s = session.current()
    with s.groups_lock:
        if group_name in s.created_groups:
            raise InvalidOptionError(
                f"group {group_name!r} was already created; a group's members are fixed when it is invoked. "
                f"Use another group_name, or terminate the group and build it again.",
                option="group_name", value=group_name)
        s.pending_group_members.setdefault(group_name, []).append(member)
    return member
