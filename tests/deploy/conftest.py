"""Finds redis-server and haproxy (Debian packages, installed by scripts/setup-system.sh)
and redis-py, and starts real ones for the deployment tests.

Under CI=true a missing program is a failure; locally, a skip that says what to install.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.cluster import Cluster, RedisServer
from tests.helpers import CI

# The real-browser fixtures (npm's sockjs-client + playwright-core, Debian's Chromium).
from tests.realclient.conftest import chromium, node_modules  # noqa: F401


def _missing(message: str) -> None:
    if CI:
        pytest.fail(message + " -- required under CI=true")
    pytest.skip(message)


def _find(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        # Debian puts haproxy in /usr/sbin, which a non-root PATH may lack.
        for directory in ("/usr/sbin", "/usr/bin", "/sbin"):
            candidate = Path(directory) / tool
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
        _missing(
            f"{tool} is not installed (run scripts/setup-system.sh, which installs "
            f"Debian's {tool} package)"
        )
    return str(found)


@pytest.fixture(scope="session")
def redis_bin() -> str:
    if importlib.util.find_spec("redis") is None:
        _missing("redis-py is not installed (pip install -e '.[test]' or '.[redis]')")
    return _find("redis-server")


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    return _find("haproxy")


@pytest.fixture(scope="module")
def redis(redis_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(redis_bin, tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(
    redis: RedisServer, haproxy_bin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two workers (the CLI's supervisor) on redis, behind haproxy."""
    c = Cluster(redis, haproxy_bin, tmp_path_factory.mktemp("cluster"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def owners(cluster: Cluster) -> dict[str, str]:
    """{worker id: a server id that haproxy sends to it}."""
    return cluster.wait_balanced()
