# syntax=docker/dockerfile:1
#
# Petri Board Arena — one image for every app process.
#
# docker-compose.yml runs this image with a different command per process
# (migrate, api, worker, beat, consumer, flower), exactly as `make run` runs
# them without Docker. The default command below is the API.
#
#   docker build -t petri-board-arena:local .

ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FLASK_APP=app.py

# Unprivileged runtime user (no login shell, fixed uid/gid for volume sanity).
RUN groupadd --system --gid 10001 arena \
 && useradd --system --uid 10001 --gid arena --create-home --home-dir /home/arena \
        --shell /usr/sbin/nologin arena

WORKDIR /app

# 1) Runtime dependencies only: requirements/runtime.lock, the same pins and hashes as the
#    .venv's dev.lock without the test and run extras. Complete as it is, so pip resolves nothing
#    (--no-deps) and the image never takes a newer release than the lock. This layer is rebuilt
#    only when the lock changes. psycopg[binary] ships wheels: no compiler or libpq-dev needed.
COPY requirements/runtime.lock ./requirements/
RUN pip install --no-deps --require-hashes --requirement requirements/runtime.lock

# 2) The project's code, used where it lies: every command runs in /app (FLASK_APP=app.py,
#    `celery -A tasks`, gunicorn's `app:app`, `flask db upgrade` reading migrations/), and
#    PYTHONPATH names it for any other working directory. No `pip install .`: it would bring a
#    build backend from the index, outside the lock.
COPY app.py ./
COPY arena/ ./arena/
COPY tasks/ ./tasks/
COPY migrations/ ./migrations/
RUN mkdir -p /app/var /var/metrics && chown arena:arena /app/var /var/metrics
ENV PYTHONPATH=/app

USER arena

EXPOSE 5000 5555

# API by default; compose overrides the command for the other processes.
CMD ["gunicorn", "-c", "python:arena.http.gunicorn_hooks", "--bind", "0.0.0.0:5000", "--workers", "2", "--worker-class", "gthread", "--threads", "16", "--access-logfile", "-", "app:app"]
