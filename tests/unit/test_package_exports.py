"""Packages that import their public names lazily still offer every one of them."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("package", ["app.audit"])
def test_every_public_name_of_a_lazy_package_resolves(package: str) -> None:
    module = importlib.import_module(package)
    where = module._WHERE
    assert set(module.__all__) == set(where)
    for name in module.__all__:
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(where[name]), name)
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
