"""A Flask app for the `python` template: gunicorn is listed in requirements.txt, so Slipway serves
`app:app` with gunicorn on the port in PORT."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from Slipway (Python + Flask)\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


if __name__ == "__main__":
    # Only for running by hand; on Slipway gunicorn imports `app` instead.
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")))
