"""Whose name is it: the tenancy rule for dataset names and KV keys, and the catalogue's byte quota (no Ray)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datashare import tenancy
from datashare.catalogue import Catalogue
from datashare.dataset_info import DatasetInfo
from datashare.errors import InvalidArgumentError, PermissionDeniedError, QuotaExceededError


def as_tenant(name: str, admin: bool = False):
    return tenancy.acting_as(tenancy.Tenant(name, admin))


def test_the_default_tenant_sees_no_change_and_others_get_full_names():
    with as_tenant("default"):
        assert tenancy.full_name("features") == "features"
        assert tenancy.full_name("default$features") == "features"
    with as_tenant("shop"):
        assert tenancy.full_name("features") == "shop$features"
        assert tenancy.full_name("shop$features") == "shop$features"
        with pytest.raises(PermissionDeniedError, match="belongs to tenant 'default'; tenant 'shop' may not") as e:
            tenancy.full_name("default$features")
        assert (e.value.tenant, e.value.owner) == ("shop", "default")
        with pytest.raises(PermissionDeniedError, match="key 'bank\\$k' belongs to tenant 'bank'"):
            tenancy.full_name("bank$k", what="key")
        with pytest.raises(InvalidArgumentError, match="both parts non-empty"):
            tenancy.full_name("$x")
        assert tenancy.visible("shop$features") and not tenancy.visible("features")
    with as_tenant("ops", admin=True):
        assert tenancy.full_name("bank$k") == "bank$k" and tenancy.full_name("default$k") == "k"
        assert tenancy.visible("bank$k") and tenancy.visible("k")


def test_the_process_tenant_comes_from_the_environment(monkeypatch):
    # A yr.init earlier in this process (a cluster test run before this one) set its tenant.
    monkeypatch.setattr(tenancy, "_process", None)
    monkeypatch.setenv(tenancy.TENANT_ENV, "shop")
    monkeypatch.setenv(tenancy.ROLE_ENV, "tenant")
    assert tenancy.current() == tenancy.Tenant("shop", False)
    tenancy.set_process_tenant(tenancy.Tenant("bank"))
    assert tenancy.current().name == "bank"


def info(name: str, version: int, nbytes: int) -> DatasetInfo:
    return DatasetInfo(name=name, version=version, schema=pa.schema([("x", pa.int64())]), num_rows=1, nbytes=nbytes,
                       num_chunks=0, node_ids=(), created_at=0.0)


def test_the_catalogue_refuses_a_publish_beyond_the_tenants_byte_quota():
    cat = Catalogue()
    cat.set_quota("shop", "dataset_bytes", 1000)
    cat.commit(info("shop$a", cat.reserve_version("shop$a"), 600), (), (), 1)
    cat.commit(info("b", cat.reserve_version("b"), 10_000), (), (), 1)  # the default tenant has no quota
    # A new version replaces the old one's bytes: 900 fits, 600 + 500 does not.
    cat.commit(info("shop$a", cat.reserve_version("shop$a"), 900), (), (), 1)
    with pytest.raises(QuotaExceededError, match="dataset_bytes quota is 1000") as e:
        cat.commit(info("shop$c", cat.reserve_version("shop$c"), 200), (), (), 1)
    assert (e.value.quota, e.value.limit, e.value.requested) == ("dataset_bytes", 1000, 1100)
    assert cat.tenant_bytes("shop") == 900 and cat.quotas("shop") == {"dataset_bytes": 1000}
    cat.set_quota("shop", "dataset_bytes", None)
    cat.commit(info("shop$c", cat.reserve_version("shop$c"), 200), (), (), 1)
