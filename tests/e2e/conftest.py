"""Fixtures for the namespace lab (appliance.lab). The lab needs root."""

from __future__ import annotations

import os
from typing import Callable, Iterator, List

import pytest

from appliance.lab import Lab


def _factory() -> Iterator[Callable[..., Lab]]:
    if os.geteuid() != 0:
        pytest.skip("the namespace lab needs root")
    labs: List[Lab] = []

    def make(*args, **kwargs) -> Lab:
        lab = Lab(*args, **kwargs)
        labs.append(lab)
        return lab

    yield make
    errors = []
    for lab in reversed(labs):
        try:
            lab.close()
        except Exception as exc:  # close every lab before reporting
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def lab_factory() -> Iterator[Callable[..., Lab]]:
    """lab_factory(**Lab kwargs) -> Lab; every Lab made is closed when the test ends."""
    yield from _factory()


@pytest.fixture(scope="module")
def lab_factory_module() -> Iterator[Callable[..., Lab]]:
    """Like lab_factory, but the Labs live until the end of the test module."""
    yield from _factory()
