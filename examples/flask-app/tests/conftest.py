"""Fixtures for the Flask app's tests: the app module, imported from the folder above, and Flask's
test client (no server, no port). APP_MODE is cleared so a mode left in the environment cannot
change what /health answers."""

import importlib
import os
import sys

import pytest

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if APP_DIR not in sys.path:
    sys.path.insert(0, APP_DIR)


@pytest.fixture
def app_module(monkeypatch):
    monkeypatch.delenv("APP_MODE", raising=False)
    return importlib.import_module("app")


@pytest.fixture
def client(app_module):
    app_module.app.config.update(TESTING=True)
    with app_module.app.test_client() as client:
        yield client
