"""WSGI entry point: `flask run`, `flask db upgrade`, `gunicorn app:app`."""

from arena import create_app

app = create_app()
