"""Checks of `yr start`'s free-form arguments: --resources JSON, --label key=value, addresses."""

from __future__ import annotations

import ipaddress
import json

from placement import labels as label_keys
from yuanrong.cli._errors import BadInput


def parse_resources(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadInput(f"--resources={text!r} is not JSON ({exc.msg}); write e.g. '{{\"camera\": 1}}'.") from None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()):
        raise BadInput(f"--resources={text!r} must map resource names to non-negative numbers, "
                       "e.g. '{\"camera\": 1}'.")
    return {k: float(v) for k, v in value.items()}


def parse_labels(values: tuple[str, ...]) -> dict[str, str]:
    from ray._private.label_utils import validate_node_label_syntax

    reserved = {label_keys.POOL: "--pool", label_keys.TIER: "--tier", label_keys.REGION: "--region"}
    labels = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--label {item!r} is not key=value; write e.g. --label yr.io/site=factory.")
        if key in reserved:
            raise BadInput(f"--label {item!r} sets a pool label; use {reserved[key]} instead, so it is checked "
                           "against the pools file.")
        try:
            validate_node_label_syntax({key: value})
        except ValueError as exc:
            raise BadInput(f"--label {item!r} is not a valid Ray node label: {exc}") from None
        labels[key] = value
    return labels


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
