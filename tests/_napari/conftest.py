"""Fixtures of the napari adapter tests (no viewer needed)."""

import pytest


@pytest.fixture
def errors(monkeypatch):
    """Messages the reader/writer would show as napari notifications."""
    shown = []
    import napari.utils.notifications as notifications

    monkeypatch.setattr(notifications, "show_error", shown.append)
    return shown
