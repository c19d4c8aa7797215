"""Reading pool names and tiers from the placement engine's pools file.

The pools file (``cluster_configs/pools.yaml``) belongs to :mod:`placement.pools`; the command line
only needs each pool's name, tier and region, to check the labels it puts on nodes. When
``placement.pools`` is importable its loader (with its line-accurate errors) is used; otherwise the
file is read with PyYAML, accepting ``pools:`` as a mapping ``name -> {tier, ...}`` or a list of
``{name, tier, ...}``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yuanrong.cli._errors import ClusterConfigError

POOLS_FILE_ENV = "YR_POOLS_FILE"
"""Environment variable naming the pools file; ``--pools`` takes precedence."""

_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class PoolEntry:
    """What the command line needs to know about one declared pool.

    Attributes:
        name: Pool name, the value of the ``yr.io/pool`` node label.
        tier: Pool tier, the value of the ``yr.io/tier`` node label.
        region: Default region of the pool's nodes, if the pools file gives one.
    """

    name: str
    tier: str
    region: str | None = None


def pools_file_candidates() -> list[Path]:
    """Where the pools file is looked for when neither ``--pools`` nor ``$YR_POOLS_FILE`` is set."""
    return [
        Path.cwd() / "cluster_configs" / "pools.yaml",
        _REPO_ROOT / "cluster_configs" / "pools.yaml",
        Path.home() / ".yr" / "pools.yaml",
    ]


def find_pools_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the pools file to use: ``explicit``, then ``$YR_POOLS_FILE``, then the candidates.

    An explicit path or ``$YR_POOLS_FILE`` is returned even if it does not exist, so that reading
    it fails with a message naming it; the default candidates are only returned if they exist.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(POOLS_FILE_ENV):
        return Path(os.environ[POOLS_FILE_ENV])
    for candidate in pools_file_candidates():
        if candidate.is_file():
            return candidate
    return None


def read_pools(path: str | os.PathLike[str]) -> dict[str, PoolEntry]:
    """Read the declared pools of a pools file.

    Args:
        path: The pools file.

    Returns:
        Pools by name.

    Raises:
        ClusterConfigError: The file is missing, not YAML, or declares no valid pools.

    Example:
        >>> sorted(read_pools("cluster_configs/pools.yaml"))   # doctest: +SKIP
        ['cloud', 'edge-1', 'edge-2']
    """
    path = Path(path)
    source = str(path)
    try:
        from placement import pools as placement_pools
    except ImportError:
        placement_pools = None
    if placement_pools is not None and hasattr(placement_pools, "load_pools"):
        from placement.errors import PoolConfigError

        try:
            pool_set = placement_pools.load_pools(path)
        except PoolConfigError as exc:
            raise ClusterConfigError(_strip_source(str(exc), source), source=source) from None
        return {
            name: PoolEntry(name=name, tier=str(pool.tier), region=getattr(pool, "region", None))
            for name, pool in pool_set.items()
        }
    return _read_pools_yaml(path)


def _strip_source(message: str, source: str) -> str:
    return message[len(source) + 1:].lstrip(": ") if message.startswith(source) else message


def _read_pools_yaml(path: Path) -> dict[str, PoolEntry]:
    import yaml

    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ClusterConfigError("the pools file is not UTF-8 text; save it as UTF-8.", source=source) from None
    except OSError as exc:
        raise ClusterConfigError(
            f"pools file cannot be read ({exc.strerror}); check the path or pass --pools FILE.",
            source=source,
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ClusterConfigError(f"{where}not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax.",
                                 source=source) from None
    raw = data.get("pools") if isinstance(data, Mapping) else None
    if not raw:
        raise ClusterConfigError("has no `pools:` section; declare at least one pool with a name and tier.",
                                 source=source)
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = [(str(name), spec) for name, spec in raw.items()]
    elif isinstance(raw, list):
        items = [(str(spec.get("name")) if isinstance(spec, Mapping) else "", spec) for spec in raw]
    else:
        raise ClusterConfigError(f"`pools:` is a {type(raw).__name__}; make it a mapping of pool name to "
                                 "its attributes.", source=source)
    pools: dict[str, PoolEntry] = {}
    for name, spec in items:
        if not name or not isinstance(spec, Mapping) or not spec.get("tier"):
            raise ClusterConfigError(f"pool {name or '(unnamed)'!r} has no `tier`; give every pool a name and "
                                     "a tier (edge, fog or cloud).", source=source)
        region = spec.get("region")
        pools[name] = PoolEntry(name=name, tier=str(spec["tier"]), region=str(region) if region else None)
    return pools
