"""Validation of cluster configs: Ray cluster-launcher YAMLs and KubeRay ``RayCluster`` manifests.

A launcher config is checked the way ``ray up`` checks it (Ray's ``prepare_config`` and
``validate_config`` against ``ray-schema.json``), then yuanrong's own rules are applied:

* every node type (cloud providers: ``available_node_types.<type>.labels``) or every listed host
  (``local`` provider: the ``--labels`` given to ``ray start`` for that host) carries ``yr.io/pool``
  and ``yr.io/tier`` labels that are valid Ray label syntax;
* each pool exists in the pools file and its tier matches the pools file;
* the dashboard is not bound to a wildcard address;
* trace switches in the start commands (``yr start --enable-trace --runtime-trace-config JSON``, or
  ``ENABLE_TRACE=true RUNTIME_TRACE_CONFIG=JSON ray start ...``) are checked as ``yr.Config`` checks them.

A KubeRay manifest is checked against the ``RayCluster`` CRD fields yuanrong uses, and the labels in
each group's ``rayStartParams`` are checked the same way.

Example:
    >>> pools = read_pools("cluster_configs/pools.yaml")                # doctest: +SKIP
    >>> summary = validate_file("cluster_configs/cloud-aws.yaml", pools=pools)  # doctest: +SKIP
    >>> sorted(summary.pools)                                           # doctest: +SKIP
    ['cloud', 'edge-1']
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from placement import labels as label_keys
from yuanrong.cli._errors import ClusterConfigError
from yuanrong.cli._pools_file import PoolEntry

KUBERAY_API_VERSION = "ray.io/v1"

_WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]"}

# A `case` branch of the local provider's worker start command: `*" 10.0.0.5 "*) YR_LABELS="..." ;;`
_HOST_BRANCH = re.compile(r"""\*"\s*([^"\s]+)\s*"\*\)\s*YR_LABELS=(?:"([^"]*)"|'([^']*)')""")


@dataclasses.dataclass(frozen=True)
class LabelledNode:
    """One node type, listed host or worker group and the labels it starts with.

    Attributes:
        where: Where in the file the labels were found, e.g. ``available_node_types.edge_1``.
        labels: The node labels.
    """

    where: str
    labels: Mapping[str, str]

    @property
    def pool(self) -> str | None:
        return self.labels.get(label_keys.POOL)


@dataclasses.dataclass(frozen=True)
class ConfigSummary:
    """What a valid config declares.

    Attributes:
        source: The file.
        kind: ``launcher`` (for ``ray up``), ``kuberay`` (for ``kubectl apply``) or ``pools`` (a
            pools file, which :func:`validate_file` also accepts so a whole directory can be checked).
        provider: Launcher provider type (``aws``, ``local``, ...) or ``kubernetes``.
        cluster_name: The cluster's name.
        nodes: Every labelled node type, host or worker group.
    """

    source: str
    kind: str
    provider: str
    cluster_name: str
    nodes: tuple[LabelledNode, ...]

    @property
    def pools(self) -> tuple[str, ...]:
        """Pool names used by the config, sorted."""
        return tuple(sorted({n.pool for n in self.nodes if n.pool}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "provider": self.provider,
            "cluster_name": self.cluster_name,
            "pools": list(self.pools),
            "nodes": [{"where": n.where, "labels": dict(n.labels)} for n in self.nodes],
        }


_MAX_ALIASES = 200
_MAX_DEPTH = 64


def _check_size(yaml: Any, text: str, source: str) -> None:
    """Refuse alias bombs and deep nesting before the YAML is built (the event parser is iterative).

    Launcher configs may use anchors and aliases for shared settings; a few hundred bytes of nested
    aliases, though, expand into billions of values when the config is walked.
    """
    aliases = depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > _MAX_ALIASES:
                raise ClusterConfigError(f"line {event.start_mark.line + 1}: more than {_MAX_ALIASES} YAML aliases; "
                                         "write the repeated values out.", source=source)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > _MAX_DEPTH:
                raise ClusterConfigError(f"line {event.start_mark.line + 1}: mappings and lists are nested more than "
                                         f"{_MAX_DEPTH} deep; a cluster config needs far fewer.", source=source)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file, turning I/O and syntax problems into one-line :class:`ClusterConfigError`."""
    import yaml

    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ClusterConfigError(f"cannot be read ({exc.strerror}); check the path.", source=source) from None
    except UnicodeDecodeError as exc:
        raise ClusterConfigError(f"is not UTF-8 text (byte {exc.start}); save it as UTF-8.", source=source) from None
    try:
        _check_size(yaml, text, source)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ClusterConfigError(f"{where}not valid YAML ({problem}); fix the syntax.", source=source) from None
    if not isinstance(data, Mapping):
        raise ClusterConfigError(
            f"top level is {type(data).__name__ if data is not None else 'empty'}, not a mapping; a cluster "
            "config is a Ray cluster-launcher YAML (with `provider:`) or a KubeRay RayCluster (with `kind:`).",
            source=source,
        )
    return data


def validate_file(path: str | os.PathLike[str], *, pools: Mapping[str, PoolEntry]) -> ConfigSummary:
    """Validate a launcher config or KubeRay manifest file against Ray's rules and the pools.

    Args:
        path: The YAML file.
        pools: Declared pools by name (see :func:`yuanrong.cli._pools_file.read_pools`).

    Returns:
        A summary of the valid config.

    Raises:
        ClusterConfigError: The file is not valid; the message says where and how to fix it.
    """
    source = str(path)
    data = load_yaml(path)
    if "pools" in data and "provider" not in data and "kind" not in data:
        from yuanrong.cli._pools_file import read_pools

        declared = read_pools(path)
        return ConfigSummary(source=source, kind="pools", provider="-", cluster_name="-", nodes=tuple(
            LabelledNode(where=f"pools.{p.name}", labels={label_keys.POOL: p.name, label_keys.TIER: p.tier})
            for p in declared.values()))
    if data.get("kind") is not None or "apiVersion" in data:
        return validate_kuberay(data, pools=pools, source=source)
    return validate_launcher(data, pools=pools, source=source)


# ---------------------------------------------------------------------------------------------
# Ray cluster-launcher configs


def validate_launcher(config: Mapping[str, Any], *, pools: Mapping[str, PoolEntry],
                      source: str = "<string>") -> ConfigSummary:
    """Validate a cluster-launcher config as ``ray up`` would, then check its pool labels.

    Raises:
        ClusterConfigError: Ray's validator or a yuanrong rule rejects the config.
    """
    provider = config.get("provider")
    if not isinstance(provider, Mapping) or not isinstance(provider.get("type"), str):
        raise ClusterConfigError(
            "has no `provider.type`; a Ray cluster-launcher config needs e.g. `provider: {type: aws, "
            "region: ...}` or `provider: {type: local, head_ip: ..., worker_ips: [...]}`.", source=source)
    _ray_validate(config, source=source)
    if provider["type"] == "local":
        nodes = _local_provider_nodes(config, source=source)
    else:
        nodes = _node_type_nodes(config, source=source)
    _check_pools(nodes, pools=pools, source=source)
    _check_dashboard_host(_start_commands(config), source=source)
    _check_trace_switches(_start_commands(config), source=source)
    return ConfigSummary(source=source, kind="launcher", provider=provider["type"],
                         cluster_name=str(config.get("cluster_name", "default")), nodes=tuple(nodes))


def _ray_validate(config: Mapping[str, Any], *, source: str) -> None:
    import click
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        prepared = prepare_config(copy.deepcopy(dict(config)))
        validate_config(prepared)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ClusterConfigError(
            f"Ray's cluster-launcher schema rejects `{where}`: {_first_line(exc.message)}. "
            "See ray/autoscaler/ray-schema.json for the allowed keys.", source=source) from None
    except click.ClickException as exc:  # Ray's launcher aborts through its CLI logger
        raise ClusterConfigError(f"Ray's cluster launcher rejects it: {_first_line(exc.message)}",
                                 source=source) from None
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ClusterConfigError(f"Ray's cluster launcher rejects it: {_first_line(str(exc))}",
                                 source=source) from None


def _node_type_nodes(config: Mapping[str, Any], *, source: str) -> list[LabelledNode]:
    nodes = []
    for name, node_type in config.get("available_node_types", {}).items():
        where = f"available_node_types.{name}.labels"
        labels = node_type.get("labels")
        if not labels:
            raise ClusterConfigError(
                f"node type {name!r} has no `labels`; give it `labels: {{{label_keys.POOL}: <pool>, "
                f"{label_keys.TIER}: <tier>}}` so its nodes join a pool.", source=source)
        nodes.append(LabelledNode(where=where, labels=dict(labels)))
    return nodes


def _local_provider_nodes(config: Mapping[str, Any], *, source: str) -> list[LabelledNode]:
    provider = config["provider"]
    head_ip = str(provider.get("head_ip", ""))
    worker_ips = [str(ip) for ip in provider.get("worker_ips", [])]
    head_labels = _labels_in_commands(config.get("head_start_ray_commands", []), source=source)
    if head_labels is None:
        raise ClusterConfigError(
            "head_start_ray_commands start Ray without `--labels=...`; add "
            f"`--labels={label_keys.POOL}=<pool>,{label_keys.TIER}=<tier>` to the `ray start --head` line.",
            source=source)
    nodes = [LabelledNode(where=f"head_start_ray_commands (head {head_ip})", labels=head_labels)]
    branches: dict[str, dict[str, str]] = {}
    for command in config.get("worker_start_ray_commands", []):
        for match in _HOST_BRANCH.finditer(str(command)):
            host, text = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
            branches[host] = _parse_labels(text, where=f"worker_start_ray_commands (host {host})", source=source)
    missing = [ip for ip in worker_ips if ip not in branches]
    if missing:
        raise ClusterConfigError(
            f"worker host(s) {', '.join(missing)} are in provider.worker_ips but have no labels in "
            f"worker_start_ray_commands; add a branch `*\" <ip> \"*) YR_LABELS=\"{label_keys.POOL}=...,"
            f"{label_keys.TIER}=...\" ;;` for each.", source=source)
    unlisted = sorted(set(branches) - set(worker_ips))
    if unlisted:
        raise ClusterConfigError(
            f"worker_start_ray_commands label host(s) {', '.join(unlisted)} that are not in provider.worker_ips "
            f"({', '.join(worker_ips) or 'none'}); list them there or remove their branch.", source=source)
    nodes += [LabelledNode(where=f"worker_start_ray_commands (host {ip})", labels=branches[ip])
              for ip in worker_ips]
    return nodes


def _labels_in_commands(commands: Any, *, source: str) -> dict[str, str] | None:
    """Labels given literally as ``--labels=...`` / ``--labels ...`` to ``ray start`` or ``yr start``."""
    for command in commands or []:
        try:
            words = shlex.split(str(command))
        except ValueError:
            continue
        for i, word in enumerate(words):
            value = None
            if word.startswith("--labels="):
                value = word[len("--labels="):]
            elif word == "--labels" and i + 1 < len(words):
                value = words[i + 1]
            if value is not None and "$" not in value:
                return _parse_labels(value, where="head_start_ray_commands", source=source)
    return None


def _parse_labels(text: str, *, where: str, source: str) -> dict[str, str]:
    from ray._private.label_utils import parse_node_labels_string

    try:
        return parse_node_labels_string(text)
    except ValueError as exc:
        raise ClusterConfigError(
            f"{where}: labels {text!r} are not valid ({exc}); write them as "
            f"`{label_keys.POOL}=edge-1,{label_keys.TIER}=edge`.", source=source) from None


def _start_commands(config: Mapping[str, Any]) -> list[str]:
    return [str(c) for key in ("head_start_ray_commands", "worker_start_ray_commands") for c in config.get(key, [])]


def _check_dashboard_host(commands: list[str], *, source: str) -> None:
    for command in commands:
        for match in re.finditer(r"--dashboard-host[= ]['\"]?([^\s'\"]+)", command):
            if match.group(1) in _WILDCARD_HOSTS:
                raise ClusterConfigError(
                    f"`--dashboard-host={match.group(1)}` exposes the dashboard and its unauthenticated job API "
                    "on every interface; use 127.0.0.1 and reach it through an SSH tunnel "
                    "(`ray dashboard CONFIG`).", source=source)


def _check_trace_switches(commands: list[str], *, source: str) -> None:
    """The trace switches each start command gives literally (values with ``$`` are left to the node)."""
    from yuanrong.cli._errors import BadInput
    from yuanrong.cli._trace_switches import node_env

    for command in commands:
        try:
            words = shlex.split(command)
        except ValueError:
            continue
        enable, config = False, None
        for i, word in enumerate(words):
            name, eq, value = word.partition("=")
            if word == "--enable-trace" or (eq and name == "ENABLE_TRACE" and value.lower() in ("1", "true", "yes", "on")):
                enable = True
            elif eq and name in ("--runtime-trace-config", "RUNTIME_TRACE_CONFIG"):
                config = value
            elif word == "--runtime-trace-config" and i + 1 < len(words):
                config = words[i + 1]
        if (enable or config is not None) and "$" not in (config or ""):
            try:
                node_env(enable, config)
            except BadInput as exc:
                raise ClusterConfigError(f"start command {_first_line(command)!r}: {exc}", source=source) from None


def _check_pools(nodes: list[LabelledNode], *, pools: Mapping[str, PoolEntry], source: str) -> None:
    from ray._private.label_utils import validate_node_label_syntax

    if not nodes:
        raise ClusterConfigError("declares no node types or hosts; nothing would join a pool.", source=source)
    known = ", ".join(sorted(pools)) or "(none)"
    for node in nodes:
        try:
            validate_node_label_syntax(dict(node.labels))
        except ValueError as exc:
            raise ClusterConfigError(f"{node.where}: {exc}", source=source) from None
        pool, tier = node.labels.get(label_keys.POOL), node.labels.get(label_keys.TIER)
        if not pool or not tier:
            raise ClusterConfigError(
                f"{node.where}: labels {dict(node.labels)} lack `{label_keys.POOL}` or `{label_keys.TIER}`; "
                "every node must say which pool and tier it belongs to.", source=source)
        if pool not in pools:
            raise ClusterConfigError(
                f"{node.where}: pool={pool!r} is not in the pools file; known pools: {known}. "
                "Add it to the pools file or pick one of those.", source=source)
        if pools[pool].tier != tier:
            raise ClusterConfigError(
                f"{node.where}: pool {pool!r} is labelled {label_keys.TIER}={tier!r} but the pools file says "
                f"tier {pools[pool].tier!r}; make them agree.", source=source)


# ---------------------------------------------------------------------------------------------
# KubeRay RayCluster manifests

# The RayCluster (ray.io/v1) fields yuanrong's manifest uses, plus their common siblings. Anything
# else is most likely a typo; the CRD would drop or reject it.
_KUBERAY_SPEC_KEYS = {
    "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headGroupSpec", "workerGroupSpecs",
    "headServiceAnnotations", "suspend", "managedBy", "gcsFaultToleranceOptions",
}
_KUBERAY_HEAD_KEYS = {"rayStartParams", "template", "serviceType", "headService", "enableIngress"}
_KUBERAY_WORKER_KEYS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "idleTimeoutSeconds", "rayStartParams",
    "template", "scaleStrategy", "suspend", "numOfHosts",
}


def validate_kuberay(manifest: Mapping[str, Any], *, pools: Mapping[str, PoolEntry],
                     source: str = "<string>") -> ConfigSummary:
    """Validate a KubeRay ``RayCluster`` manifest's structure and the pool labels of each group.

    Raises:
        ClusterConfigError: A required field is missing or mistyped, a key is unknown, or a
            group's labels are invalid or name an unknown pool.
    """
    def fail(where: str, why: str) -> ClusterConfigError:
        return ClusterConfigError(f"`{where}` {why}", source=source)

    if manifest.get("apiVersion") != KUBERAY_API_VERSION or manifest.get("kind") != "RayCluster":
        raise fail("apiVersion/kind", f"is {manifest.get('apiVersion')!r}/{manifest.get('kind')!r}; a KubeRay "
                   f"cluster is apiVersion {KUBERAY_API_VERSION!r}, kind 'RayCluster'.")
    name = (manifest.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        raise fail("metadata.name", f"is {name!r}; give a lower-case DNS name such as 'yuanrong'.")
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        raise fail("spec", "is missing; a RayCluster needs spec.headGroupSpec and spec.workerGroupSpecs.")
    _check_keys(spec, _KUBERAY_SPEC_KEYS, "spec", fail)
    head = spec.get("headGroupSpec")
    if not isinstance(head, Mapping):
        raise fail("spec.headGroupSpec", "is missing; the head pod is declared there.")
    _check_keys(head, _KUBERAY_HEAD_KEYS, "spec.headGroupSpec", fail)
    nodes = [_kuberay_group(head, "spec.headGroupSpec", fail, source=source)]
    workers = spec.get("workerGroupSpecs")
    if not isinstance(workers, list) or not workers:
        raise fail("spec.workerGroupSpecs", "is missing or empty; declare one worker group per pool.")
    seen: set[str] = set()
    for i, group in enumerate(workers):
        where = f"spec.workerGroupSpecs[{i}]"
        if not isinstance(group, Mapping):
            raise fail(where, "is not a mapping.")
        _check_keys(group, _KUBERAY_WORKER_KEYS, where, fail)
        group_name = group.get("groupName")
        if not isinstance(group_name, str) or not group_name:
            raise fail(f"{where}.groupName", "is missing; name each worker group (e.g. after its pool).")
        if group_name in seen:
            raise fail(f"{where}.groupName", f"{group_name!r} is used twice; group names must be unique.")
        seen.add(group_name)
        counts = {k: group.get(k) for k in ("replicas", "minReplicas", "maxReplicas")}
        for key, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise fail(f"{where}.{key}", f"is {value!r}; give a non-negative integer.")
        if not counts["minReplicas"] <= counts["replicas"] <= counts["maxReplicas"]:
            raise fail(where, f"has minReplicas={counts['minReplicas']}, replicas={counts['replicas']}, "
                       f"maxReplicas={counts['maxReplicas']}; need minReplicas <= replicas <= maxReplicas.")
        nodes.append(_kuberay_group(group, where, fail, source=source))
    _check_pools(nodes, pools=pools, source=source)
    head_params = head.get("rayStartParams") or {}
    if str(head_params.get("dashboard-host", "")) in _WILDCARD_HOSTS:
        raise fail("spec.headGroupSpec.rayStartParams.dashboard-host",
                   "binds the dashboard to every interface; use '127.0.0.1' and `kubectl port-forward`.")
    return ConfigSummary(source=source, kind="kuberay", provider="kubernetes", cluster_name=name,
                         nodes=tuple(nodes))


def _check_keys(mapping: Mapping[str, Any], allowed: set[str], where: str, fail: Any) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise fail(where, f"has unknown key(s) {', '.join(unknown)}; valid ones are {', '.join(sorted(allowed))}.")


def _kuberay_group(group: Mapping[str, Any], where: str, fail: Any, *, source: str) -> LabelledNode:
    params = group.get("rayStartParams")
    if not isinstance(params, Mapping):
        raise fail(f"{where}.rayStartParams", "is missing; it carries the node labels (`labels: \"yr.io/pool=...\"`).")
    for key, value in params.items():
        if not isinstance(value, str):
            raise fail(f"{where}.rayStartParams.{key}",
                       f"is {value!r} ({type(value).__name__}); KubeRay wants every value as a string, e.g. \"{value}\".")
    template = group.get("template")
    containers = (((template or {}).get("spec") or {}).get("containers")) if isinstance(template, Mapping) else None
    if not isinstance(containers, list) or not containers:
        raise fail(f"{where}.template.spec.containers", "is missing or empty; the first container runs Ray.")
    for j, container in enumerate(containers):
        if not isinstance(container, Mapping) or not container.get("name") or not container.get("image"):
            raise fail(f"{where}.template.spec.containers[{j}]", "needs a `name` and an `image`.")
    labels_text = params.get("labels")
    if not labels_text:
        raise fail(f"{where}.rayStartParams.labels",
                   f"is missing; set it to \"{label_keys.POOL}=<pool>,{label_keys.TIER}=<tier>\".")
    labels = _parse_labels(labels_text, where=f"{where}.rayStartParams.labels", source=source)
    return LabelledNode(where=f"{where}.rayStartParams.labels", labels=labels)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
