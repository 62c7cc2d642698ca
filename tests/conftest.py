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


def _folder_or_skip(path: pathlib.Path, what: str) -> pathlib.Path:
    if not path.is_dir():
        pytest.skip(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Path to ../shared/data (or $KDZOO_SHARED_DATA); skips the test when absent."""
    return _folder_or_skip(_shared_data_dir(), "real data (set KDZOO_SHARED_DATA to run this test)")


@pytest.fixture(scope="session")
def audioset_dir(shared_data) -> pathlib.Path:
    return _folder_or_skip(shared_data / "audioset", "AudioSet embeddings")


@pytest.fixture(scope="session")
def yt8m_dir(shared_data) -> pathlib.Path:
    return _folder_or_skip(shared_data / "yt8m", "YouTube-8M data")
