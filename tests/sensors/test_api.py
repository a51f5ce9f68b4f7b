"""The public names of the head runtime and the world exist, once each."""

from __future__ import annotations

import pytest

from edgeloop import sensors
from edgeloop.sensors import world


@pytest.mark.parametrize("package", [sensors, world])
def test_every_public_name_exists_once(package):
    assert len(set(package.__all__)) == len(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None, name
