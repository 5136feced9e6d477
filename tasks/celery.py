"""The entry `celery -A tasks` finds: the Celery app that `arena.create_app` builds."""

from arena import create_app
from arena.bootstrap import components

app = components(create_app()).celery
