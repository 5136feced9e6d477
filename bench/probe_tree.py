"""Run inside a source tree (cwd and PYTHONPATH at it) by bench/trees.py: where that tree's
Celery tasks go, so its Procfile's `-Q` options can be checked against the bench's queues, and
which files its code comes from, so a stray import of another tree is caught, and how it names
an arena's view in the read model (bench/tree_views.py). Prints JSON.

It only builds the app (no connection is opened): the routes come from the tree's own Celery
configuration under the environment it was given.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from celery.app.utils import find_app

    import arena
    import tasks

    celery = find_app("tasks")  # as `celery -A tasks` finds it, in this tree's layout
    celery.loader.import_default_modules()
    routes = {}
    for name in sorted(n for n in celery.tasks if n.startswith("tasks.")):
        queue = celery.amqp.router.route({}, name).get("queue")
        routes[name] = getattr(queue, "name", None) or str(queue)
    report = {
        "arena": arena.__file__,
        "tasks": tasks.__file__,
        "routes": routes,
        # What a worker started without -Q consumes.
        "default_queues": sorted(celery.amqp.queues.keys()),
        "default_queue": celery.conf.task_default_queue,
        "view_key": _view_key(),
    }
    json.dump(report, sys.stdout)
    return 0


def _view_key() -> str:
    """How the tree names an arena's view, with bench/tree_views.py's placeholders."""
    from arena.readmodel.keys import Keys

    return Keys("PREFIX", "GENERATION").view("ARENA")


if __name__ == "__main__":
    sys.exit(main())
