"""Secrets made once into var/ for local runs, by whichever process needs one first.

Only the standard library, so scripts/services.sh can run this file with any Python 3.11 (before
.venv exists) to make var/credentials, the local services' passwords: RabbitMQ's user, the read
model Redis's `requirepass` and Flower's basic auth. arena/settings.py builds the local defaults
of CELERY_BROKER_URL, REDIS_URL and FLOWER_BASIC_AUTH from the same file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
from pathlib import Path

LOCAL_CREDENTIALS = Path("var") / "credentials"
# The passwords var/credentials holds, one `NAME=value` line each (base64url: no quoting needed
# in a URL, a shell or a config file).
CREDENTIALS = ("RABBITMQ_PASSWORD", "READMODEL_REDIS_PASSWORD", "FLOWER_PASSWORD")
PASSWORD_BYTES = 24


def write_once(path: Path, data: bytes) -> bytes:
    """What `path` holds, after writing `data` there if it did not exist yet.

    Written whole or not at all, mode 0600: into a temporary file beside it, synced, then linked
    into place. A link (unlike os.replace) fails when the name exists, so of processes starting
    at once exactly one's data lands, and every one of them returns that.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another was first: its data stands
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
        directory = os.open(path.parent, os.O_RDONLY)
        try:  # the new name itself survives a crash
            os.fsync(directory)
        finally:
            os.close(directory)
    return path.read_bytes()


def local_credentials(path: Path = LOCAL_CREDENTIALS) -> dict[str, str]:
    """The local services' passwords from `path`, made there first if need be."""
    made = "".join(f"{name}={secrets.token_urlsafe(PASSWORD_BYTES)}\n" for name in CREDENTIALS)
    text = write_once(path, made.encode()).decode()
    found = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    missing = [name for name in CREDENTIALS if not found.get(name)]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: delete it and run `make services`")
    return {name: found[name] for name in CREDENTIALS}


if __name__ == "__main__":  # scripts/services.sh: make the file (argument: its path)
    local_credentials(Path(sys.argv[1]))
