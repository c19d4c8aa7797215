"""Listing and killing named instances (openYuanrong's ``list_named_instances`` / ``kill_instance``)."""

from __future__ import annotations

import ray

from yuanrong._private import session, tenants
from yuanrong._private.core.instances import InstanceProxy, _namespace, get_instance


# Namespaces of yuanrong's and Ray's own actors, which are not the user's instances.
_INTERNAL_NAMESPACES = ("yuanrong-datashare", "yuanrong-streams", "yr-placement", "serve")


def list_named_instances(all_namespaces: bool = False, namespace: str = "") -> list:
    """The live named instances.

    As in openYuanrong, every namespace is listed: an instance in the job's namespace by its name,
    one in another namespace as ``"namespace-name"`` (other namespaces first, each part sorted).
    With ``namespace``, only that namespace's names; with ``all_namespaces=True``, a list of
    ``{"name": ..., "namespace": ...}``. yuanrong's and Ray Serve's own actors are never listed.
    """
    session.require_init()
    entries = [e for e in ray.util.list_named_actors(all_namespaces=True)
               if e["namespace"] not in _INTERNAL_NAMESPACES and not e["namespace"].startswith("_")
               and tenants.visible(e["namespace"])]
    if all_namespaces:
        return sorted(entries, key=lambda e: (e["namespace"], e["name"]))
    if namespace:
        ns = _namespace(namespace)
        return sorted(e["name"] for e in entries if e["namespace"] == ns)
    own = _namespace("")
    others = sorted(f"{e['namespace']}-{e['name']}" for e in entries if e["namespace"] != own)
    return others + sorted(e["name"] for e in entries if e["namespace"] == own)


def kill_instance(instance_or_name: InstanceProxy | str, namespace: str = "") -> None:
    """Terminate an instance given its handle or its name (in ``namespace``).

    Raises:
        InstanceNotFoundError: No instance has that name.
    """
    session.require_init()
    if isinstance(instance_or_name, InstanceProxy):
        instance_or_name.terminate()
        return
    proxy = get_instance(instance_or_name, namespace, timeout=0)
    proxy.terminate()
