"""Shared pytest fixtures: the real data in ../shared/data and small helpers."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _shared_data_dir() -> pathlib.Path:
    env = os.environ.get("KDZOO_SHARED_DATA")
    if env:
        return pathlib.Path(env)
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path to ../shared/data (or $KDZOO_SHARED_DATA); skips the test when absent."""
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set KDZOO_SHARED_DATA to run this test)")
    return path


@pytest.fixture(scope="session")
def audioset_dir(shared_data) -> pathlib.Path:
    path = shared_data / "audioset"
    if not path.is_dir():
        pytest.skip(f"AudioSet embeddings not found at {path}")
    return path


@pytest.fixture(scope="session")
def yt8m_dir(shared_data) -> pathlib.Path:
    path = shared_data / "yt8m"
    if not path.is_dir():
        pytest.skip(f"YouTube-8M data not found at {path}")
    return path
