"""Shared test fixtures: a private cache folder, the real N-MNIST sample, and no network."""
import os
import socket

import pytest

from spikelab.cli import main

from parts import NMNIST_SAMPLE, missing


def pytest_collection_modifyitems(items):
    """Tests that read the real N-MNIST sample carry the ``nmnist_sample`` marker (``-m "not nmnist_sample"``)."""
    for item in items:
        if "nmnist_sample" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.nmnist_sample)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Every test writes caches (binned frames, the demo set) to one session folder, never ~/.cache."""
    cache = tmp_path_factory.mktemp("spikelab-cache")
    old = os.environ.get("SPIKELAB_CACHE")
    os.environ["SPIKELAB_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("SPIKELAB_CACHE", None)
    else:
        os.environ["SPIKELAB_CACHE"] = old


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Tests never touch the network: any outgoing connection fails loudly."""

    def refuse(*args, **kwargs):
        raise NetworkBlocked("a test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="session")
def nmnist_sample():
    """The 1,100 real N-MNIST recordings in the original layout (read-only)."""
    if not (NMNIST_SAMPLE / "NMNIST" / "Test").is_dir():
        missing(f"the real N-MNIST sample is not at {NMNIST_SAMPLE} (the shared/ folder beside the checkout)")
    return NMNIST_SAMPLE


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """A small MLP trained on the demo set through the CLI (binary input spikes, zero reset)."""
    run = tmp_path_factory.mktemp("export") / "demo"
    assert main(["train", "--hidden", "64", "--epochs", "3", "--batch-size", "128", "--no-progress",
                 "--out", str(run)]) == 0
    return run
