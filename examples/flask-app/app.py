"""The reference web app Pipewarden validates: a minimal Flask app served behind nginx.

APP_MODE makes it misbehave on purpose, for Pipewarden's end-to-end tests:
  healthy (default) | wrong-body (health says degraded) | slow (health takes SLOW_SECONDS)
"""

import os
import time

from flask import Flask, jsonify

app = Flask(__name__)
VERSION = os.environ.get("APP_VERSION", "1.0.0")


@app.get("/")
def index():
    return "Hello from flask-web-app\n"


@app.get("/health")
def health():
    mode = os.environ.get("APP_MODE", "healthy")
    if mode == "slow":
        time.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
    status = "degraded" if mode == "wrong-body" else "ok"
    return jsonify(status=status, version=VERSION)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
