"""The Flask app answers what its validation spec (validation.yaml) and nginx expect: /health with
status ok and the version, / with the greeting, and the misbehaving modes the end-to-end tests use
answer as they promise."""

import time


def test_health_is_ok_and_names_the_version(client, app_module):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.is_json
    assert response.get_json() == {"status": "ok", "version": app_module.VERSION}


def test_home_page_greets(client):
    response = client.get("/")

    assert response.status_code == 200
    # validation.yaml's home-page check looks for this text.
    assert "Hello from flask-web-app" in response.get_data(as_text=True)


def test_health_says_degraded_in_wrong_body_mode(client, monkeypatch):
    monkeypatch.setenv("APP_MODE", "wrong-body")

    response = client.get("/health")

    # Still 200: only the JSON field tells a broken release apart, which the spec's jsonField checks.
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"


def test_health_is_slow_in_slow_mode(client, monkeypatch):
    monkeypatch.setenv("APP_MODE", "slow")
    monkeypatch.setenv("SLOW_SECONDS", "0.3")

    started = time.monotonic()
    response = client.get("/health")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert elapsed >= 0.3


def test_health_answers_get_only(client):
    assert client.post("/health").status_code == 405


def test_unknown_path_is_not_found(client):
    assert client.get("/admin").status_code == 404
