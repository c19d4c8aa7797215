"""Node pools: named sets of nodes with a tier, labels and the attributes policies weigh.

A pool is declared in a pools file (YAML, validated against :data:`POOLS_SCHEMA`) or discovered from
the ``yr.io/pool`` / ``yr.io/tier`` / ``yr.io/region`` labels of live nodes (see
:mod:`placement.labels`). A declared pool may have no nodes yet; a discovered pool that is not in the
file gets neutral attributes (no cost, no carbon figure, no latency figures).

Example:
    >>> pools = parse_pools('''
    ... version: 1
    ... pools:
    ...   edge-1: {tier: edge, latency_ms: {regions: {site-1: 3}}}
    ...   cloud: {tier: cloud, cost_per_hour: {CPU: 0.05}, latency_ms: {regions: {site-1: 40}}}
    ... ''')
    >>> pools["cloud"].cost_per_hour["CPU"]
    0.05
    >>> pools.names
    ('cloud', 'edge-1')
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from placement import labels as label_keys
from placement.errors import PoolConfigError


_NONNEG = {"type": "number", "minimum": 0}
_NAME = {"type": "string", "pattern": label_keys.VALUE_PATTERN}

POOLS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "yuanrong pools file",
    "type": "object",
    "required": ["version", "pools"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "pools": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _NAME,
            "additionalProperties": {
                "type": "object",
                "required": ["tier"],
                "additionalProperties": False,
                "properties": {
                    "tier": _NAME,
                    "region": _NAME,
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "cost_per_hour": {"type": "object", "additionalProperties": _NONNEG},
                    "carbon_intensity": {
                        "oneOf": [
                            _NONNEG,
                            {
                                "type": "object",
                                "required": ["points"],
                                "additionalProperties": False,
                                "properties": {
                                    "period_h": {"type": "number", "exclusiveMinimum": 0},
                                    "points": {
                                        "type": "array",
                                        "minItems": 1,
                                        "items": {
                                            "type": "array",
                                            "prefixItems": [_NONNEG, _NONNEG],
                                            "minItems": 2,
                                            "maxItems": 2,
                                        },
                                    },
                                },
                            },
                        ]
                    },
                    "watts_per_cpu": _NONNEG,
                    "bandwidth_mbps": _NONNEG,
                    "datashare_cache_mb": _NONNEG,
                    "latency_ms": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "pools": {"type": "object", "additionalProperties": _NONNEG},
                            "regions": {"type": "object", "additionalProperties": _NONNEG},
                        },
                    },
                    "attributes": {"type": "object"},
                },
            },
        },
    },
}
"""JSON Schema of a pools file. ``docs/placement.md`` documents every key."""


@dataclasses.dataclass(frozen=True)
class CarbonIntensity:
    """Grid carbon intensity in gCO2/kWh: a constant, or a step series repeating every ``period_h``.

    Attributes:
        points: ``(hour, gCO2/kWh)`` pairs sorted by hour; the value holds until the next point.
        period_h: Length of one cycle in hours (24 for a daily profile); ``None`` for a constant.
    """

    points: tuple[tuple[float, float], ...]
    period_h: float | None = None

    def __post_init__(self) -> None:
        if not self.points:
            raise PoolConfigError("carbon_intensity has no points; give a number or at least one [hour, value].")
        object.__setattr__(self, "points", tuple(sorted((float(h), float(v)) for h, v in self.points)))

    @classmethod
    def constant(cls, value: float) -> CarbonIntensity:
        return cls(((0.0, float(value)),), None)

    def at(self, hour: float) -> float:
        """Intensity at ``hour`` (hours since the series' origin)."""
        if self.period_h is not None:
            hour = hour % self.period_h
        hours = [h for h, _ in self.points]
        i = bisect.bisect_right(hours, hour) - 1
        # Before the first point the cycle's last value still holds.
        return self.points[i][1] if i >= 0 else self.points[-1][1]


@dataclasses.dataclass(frozen=True)
class Pool:
    """One node pool.

    Attributes:
        name: Pool name, the value of the ``yr.io/pool`` node label.
        tier: ``edge``, ``fog``, ``cloud`` or any other tier name.
        region: Default network region of the pool's nodes.
        labels: Labels every node of the pool is expected to carry (informational).
        cost_per_hour: Price per unit of resource per hour, keyed by Ray resource name (``CPU``,
            ``GPU``, custom); ``memory`` is priced per GiB-hour.
        carbon: Grid carbon intensity, or ``None`` when unknown.
        watts_per_cpu: Power drawn per busy CPU, used to turn intensity into grams per hour.
        bandwidth_mbps: Uplink bandwidth of the pool, or ``None``.
        datashare_cache_mb: MiB of the pool's datashare edge cache (copies of datasets its readers
            pulled from other pools), or ``None`` for no cache.
        latency_to_pools_ms: Round-trip latency to other pools.
        latency_to_regions_ms: Round-trip latency from client regions to this pool.
        attributes: Anything else a custom policy needs.
        declared: False when the pool was discovered from node labels only.
    """

    name: str
    tier: str
    region: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cost_per_hour: Mapping[str, float] = dataclasses.field(default_factory=dict)
    carbon: CarbonIntensity | None = None
    watts_per_cpu: float = 10.0
    bandwidth_mbps: float | None = None
    datashare_cache_mb: float | None = None
    latency_to_pools_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)
    latency_to_regions_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)
    attributes: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    declared: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PoolConfigError(f"pool name={self.name!r} is not a non-empty string; name pools like 'edge-1'.")
        if not isinstance(self.tier, str) or not self.tier:
            raise PoolConfigError(
                f"pool {self.name!r} has tier={self.tier!r}; give a tier name such as "
                f"{', '.join(label_keys.KNOWN_TIERS)}."
            )
        for field in ("labels", "cost_per_hour", "latency_to_pools_ms", "latency_to_regions_ms", "attributes"):
            object.__setattr__(self, field, MappingProxyType(dict(getattr(self, field))))
        for field in ("cost_per_hour", "latency_to_pools_ms", "latency_to_regions_ms"):
            for key, value in getattr(self, field).items():
                if not _finite_nonneg(value):
                    raise PoolConfigError(
                        f"pool {self.name!r}: {field}[{key!r}]={value!r} is not a finite non-negative number; "
                        "give a number such as 0.05.",
                        key=f"{self.name}.{field}.{key}",
                    )
        for field, value in (("watts_per_cpu", self.watts_per_cpu), ("bandwidth_mbps", self.bandwidth_mbps),
                             ("datashare_cache_mb", self.datashare_cache_mb)):
            if value is not None and not _finite_nonneg(value):
                raise PoolConfigError(f"pool {self.name!r}: {field}={value!r} is not a finite non-negative number; "
                                      "give a number such as 10.", key=f"{self.name}.{field}")
        if self.carbon is not None and not all(_finite_nonneg(h) and _finite_nonneg(v) for h, v in self.carbon.points):
            raise PoolConfigError(f"pool {self.name!r}: carbon_intensity has a value that is not a finite "
                                  "non-negative number; give gCO2/kWh such as 350.", key=f"{self.name}.carbon_intensity")

    def carbon_at(self, hour: float) -> float | None:
        return None if self.carbon is None else self.carbon.at(hour)

    def latency_to(self, region_or_pool: str) -> float | None:
        """Latency to a client region or another pool; 0 to itself; ``None`` when unknown."""
        if region_or_pool == self.name:
            return 0.0
        value = self.latency_to_regions_ms.get(region_or_pool)
        if value is None:
            value = self.latency_to_pools_ms.get(region_or_pool)
        return value


def _finite_nonneg(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


class PoolSet(Mapping[str, Pool]):
    """An immutable, name-sorted collection of pools.

    Args:
        pools: The pools; names must be unique.
    """

    def __init__(self, pools: Iterable[Pool] = ()) -> None:
        by_name: dict[str, Pool] = {}
        for pool in pools:
            if pool.name in by_name:
                raise PoolConfigError(f"pool {pool.name!r} is defined twice; give each pool one definition.",
                                      key=pool.name)
            by_name[pool.name] = pool
        self._pools = {name: by_name[name] for name in sorted(by_name)}

    def __getitem__(self, name: str) -> Pool:
        try:
            return self._pools[name]
        except KeyError:
            raise KeyError(
                f"pool={name!r} does not exist; known pools: {', '.join(self._pools) or '(none)'}. "
                "Add it to the pools file or pick one of those."
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._pools)

    def __len__(self) -> int:
        return len(self._pools)

    def __repr__(self) -> str:
        return f"PoolSet({', '.join(f'{p.name}:{p.tier}' for p in self._pools.values())})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._pools)

    def with_discovered(self, node_labels: Iterable[Mapping[str, str]]) -> PoolSet:
        """Add pools named by node labels that are not declared here, with neutral attributes.

        A node without ``yr.io/pool`` is put in a pool named after its tier (or ``default``).
        """
        found: dict[str, Pool] = {}
        for lab in node_labels:
            name = lab.get(label_keys.POOL) or lab.get(label_keys.TIER) or "default"
            if name in self._pools or name in found:
                continue
            found[name] = Pool(name=name, tier=lab.get(label_keys.TIER, "unknown"),
                               region=lab.get(label_keys.REGION), declared=False)
        if not found:
            return self
        return PoolSet([*self._pools.values(), *found.values()])


# ---------------------------------------------------------------------------------------------
# Loading a pools file with line-accurate errors.


MAX_BYTES = 1 << 20
"""Largest pools file read; real ones are a few kilobytes."""

MAX_DEPTH = 16
"""Deepest nesting of mappings and lists accepted; the schema needs five levels."""


def _check_events(text: str, source: str) -> None:
    """Refuse aliases and deep nesting before anything is built from the YAML.

    An alias makes the value tree share a node, so a few hundred bytes of nested aliases expand
    into billions of values (a "billion laughs" file); deep nesting exhausts Python's recursion.
    PyYAML's event parser is iterative, so this scan costs the same for any input.
    """
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1
            raise PoolConfigError(f"{source}:{line}: YAML aliases (*{event.anchor}) are not supported in a pools file; "
                                  "write the values out in full.", source=source, line=line)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise PoolConfigError(f"{source}:{line}: mappings and lists are nested more than {MAX_DEPTH} deep; a "
                                      "pools file needs five levels (see docs/placement.md).", source=source, line=line)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


class _Marked:
    """Python value tree built from a YAML node tree, remembering the line of every key and value."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[tuple[Any, ...], int] = {}

    def build(self, node: Any, path: tuple[Any, ...] = ()) -> Any:
        import yaml

        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = _scalar(key_node, self.source)
                if key in out:
                    raise PoolConfigError(
                        f"{self.source}:{key_node.start_mark.line + 1}: key {_dotted(path + (key,))!r} appears "
                        "twice; keep one of them.",
                        source=self.source, line=key_node.start_mark.line + 1, key=_dotted(path + (key,)),
                    )
                self.lines[path + (key, "<key>")] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        value = _scalar(node, self.source)
        if isinstance(value, float) and not math.isfinite(value):
            line = node.start_mark.line + 1
            raise PoolConfigError(f"{self.source}:{line}: {_dotted(path)} = {value!r} is not a finite number; give a "
                                  "number such as 0.05.", source=self.source, line=line, key=_dotted(path))
        return value

    def line_of(self, path: tuple[Any, ...], key: Any = None) -> int | None:
        if key is not None and path + (key, "<key>") in self.lines:
            return self.lines[path + (key, "<key>")]
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


def _scalar(node: Any, source: str) -> Any:
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode):
        raise PoolConfigError(f"{source}:{line}: a mapping key must be a plain value, got a {node.id}; use a string key.",
                              line=line)
    if node.tag == "tag:yaml.org,2002:merge":
        raise PoolConfigError(f"{source}:{line}: YAML merge keys (<<) are not supported in a pools file; write the "
                              "keys out in full.", source=source, line=line)
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        # An unknown tag (!!python/...), a malformed timestamp or an integer of thousands of digits.
        raise PoolConfigError(f"{source}:{line}: the value {node.value[:40]!r} cannot be read "
                              f"({str(exc).splitlines()[0]}); write a plain string or number.",
                              source=source, line=line) from None


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_pools(text: str, *, source: str = "<string>") -> PoolSet:
    """Parse and validate the text of a pools file.

    Args:
        text: YAML text.
        source: File name used in error messages.

    Returns:
        The declared pools.

    Raises:
        PoolConfigError: The YAML is malformed or does not match :data:`POOLS_SCHEMA`; the error
            names the file, line and dotted key.
    """
    import jsonschema
    import yaml

    if len(text) > MAX_BYTES:
        raise PoolConfigError(f"{source}: the pools file has {len(text)} characters, more than {MAX_BYTES}; a pools "
                              "file lists pools, not data.", source=source)
    try:
        _check_events(text, source)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PoolConfigError(f"{source}:{line}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax.",
                              source=source, line=line) from None
    if root is None:
        raise PoolConfigError(f"{source}: the pools file is empty; it needs `version: 1` and a `pools:` mapping.",
                              source=source, line=1)
    marked = _Marked(source)
    data = marked.build(root)
    validator = jsonschema.Draft202012Validator(POOLS_SCHEMA)
    # Shallowest first; at one level an unknown key beats a missing one (it is usually its misspelling).
    errors = sorted(validator.iter_errors(data),
                    key=lambda e: (len(e.absolute_path), e.validator != "additionalProperties",
                                   list(map(str, e.absolute_path))))
    if errors:
        raise _schema_error(errors[0], marked, data)
    return PoolSet(_pool_from_dict(name, spec) for name, spec in data["pools"].items())


def load_pools(path: str | Path) -> PoolSet:
    """Read and validate a pools file (see :func:`parse_pools`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PoolConfigError(f"pools file {str(path)!r} cannot be read ({exc.strerror}); check the path.",
                              source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise PoolConfigError(f"{path}: the pools file is not UTF-8 text (byte {exc.start} is "
                              f"{exc.object[exc.start:exc.start + 1]!r}); save it as UTF-8.", source=str(path)) from None
    return parse_pools(text, source=str(path))


def _schema_error(error: Any, marked: _Marked, data: Any) -> PoolConfigError:
    path = tuple(error.absolute_path)
    key = _dotted(path)
    line = marked.line_of(path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        if extra:
            key = _dotted(path + (extra[0],))
            line = marked.line_of(path, extra[0])
            valid = ", ".join(sorted(allowed))
            return PoolConfigError(
                f"{marked.source}:{line}: unknown key {key!r}; valid keys here: {valid}. "
                "Fix the spelling or remove it.",
                source=marked.source, line=line, key=key,
            )
    if error.validator == "required":
        if path and isinstance(path[-1], str):
            line = marked.line_of(path[:-1], path[-1])
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        return PoolConfigError(
            f"{marked.source}:{line}: {key!r} lacks the required key {missing!r}; add it.",
            source=marked.source, line=line, key=_dotted(path + (missing,)),
        )
    if "propertyNames" in error.absolute_schema_path:
        bad = error.instance
        line = marked.line_of(path, bad)
        key = _dotted(path + (bad,))
        return PoolConfigError(
            f"{marked.source}:{line}: pool name {bad!r} is not a valid label value; use letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit (at most 63 characters).",
            source=marked.source, line=line, key=key,
        )
    if path and isinstance(path[-1], str):
        line = marked.line_of(path[:-1], path[-1])
    return PoolConfigError(
        f"{marked.source}:{line}: {key} = {error.instance!r} is invalid ({error.message}); "
        "see the pools file schema in docs/placement.md.",
        source=marked.source, line=line, key=key,
    )


def _pool_from_dict(name: str, spec: Mapping[str, Any]) -> Pool:
    carbon_spec = spec.get("carbon_intensity")
    if carbon_spec is None:
        carbon = None
    elif isinstance(carbon_spec, (int, float)):
        carbon = CarbonIntensity.constant(carbon_spec)
    else:
        carbon = CarbonIntensity(tuple((p[0], p[1]) for p in carbon_spec["points"]), carbon_spec.get("period_h", 24.0))
    latency = spec.get("latency_ms", {})
    return Pool(
        name=name,
        tier=spec["tier"],
        region=spec.get("region"),
        labels=spec.get("labels", {}),
        cost_per_hour={k: float(v) for k, v in spec.get("cost_per_hour", {}).items()},
        carbon=carbon,
        watts_per_cpu=float(spec.get("watts_per_cpu", 10.0)),
        bandwidth_mbps=spec.get("bandwidth_mbps"),
        datashare_cache_mb=spec.get("datashare_cache_mb"),
        latency_to_pools_ms={k: float(v) for k, v in latency.get("pools", {}).items()},
        latency_to_regions_ms={k: float(v) for k, v in latency.get("regions", {}).items()},
        attributes=spec.get("attributes", {}),
    )
