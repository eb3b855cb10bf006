"""Importing the optional ecosystems in tests (imported by the test modules, not a conftest).

Without the extra, its tests skip with the pip command to run. In CI (CI=true) the extras are
installed by `make test EXTRAS="test,hf,mmaction"`, so a failed import there is a failure, not
a silent skip.
"""

import importlib
import os

import pytest


def require_extra(module: str, extra: str):
    """Import ``module`` or skip (outside CI) with the install command for ``extra``."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"needs the {extra} extra: pip install -e '.[{extra}]'")


def require(available: bool, reason: str) -> None:
    """Go on when ``available``; otherwise skip (outside CI) or fail (CI=true) with ``reason``:
    for what an installed package may lack, such as an encoder of the PyAV build."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must be able to run this test: {reason}")
    pytest.skip(reason)
