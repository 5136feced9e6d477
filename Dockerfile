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

# 1) Runtime dependencies only, read from pyproject.toml, so this layer is
#    rebuilt only when the dependency list changes (not on every code edit).
#    psycopg[binary] ships wheels: no compiler or libpq-dev needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# 2) The project itself (`pip install .` installs the arena and tasks
#    packages; app.py and migrations/ are used from /app, the working dir,
#    which is also where FLASK_APP=app.py and `flask db upgrade` look).
#    README.md* is a glob so a missing README does not break the build.
COPY app.py README.md* ./
COPY arena/ ./arena/
COPY tasks/ ./tasks/
COPY migrations/ ./migrations/
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info \
 && mkdir -p /app/var /var/metrics && chown arena:arena /app/var /var/metrics

USER arena

EXPOSE 5000 5555

# API by default; compose overrides the command for the other processes.
CMD ["gunicorn", "-c", "python:arena.http.gunicorn_hooks", "--bind", "0.0.0.0:5000", "--workers", "2", "--worker-class", "gthread", "--threads", "16", "--access-logfile", "-", "app:app"]
