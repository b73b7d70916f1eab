"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny-tensor tests on one torch thread: extra threads only contend on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory):
    """Point $LABKIT_CACHE at a session folder, so conversions made by tests never land in the user's cache.

    Everything else under the real cache root (vendored front-end files, downloaded corpora) is linked in,
    so tests still find it; kernels started by notebook tests inherit the variable.
    """
    import os
    from pathlib import Path

    real = Path(os.environ.get("LABKIT_CACHE") or Path.home() / ".cache" / "labkit")
    root = tmp_path_factory.mktemp("labkit-cache")
    for child in real.iterdir() if real.is_dir() else []:
        if child.name != "models":
            (root / child.name).symlink_to(child, target_is_directory=child.is_dir())
    saved = os.environ.get("LABKIT_CACHE")
    os.environ["LABKIT_CACHE"] = str(root)
    yield root
    if saved is None:
        os.environ.pop("LABKIT_CACHE", None)
    else:
        os.environ["LABKIT_CACHE"] = saved
