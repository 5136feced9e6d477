"""Celery tasks: the outbox relay, the projections, and housekeeping.

`celery -A tasks worker|beat|flower` finds the app in `tasks.celery`, which builds it the way
every process is built (`arena.create_app`). Task names and routes live in
`arena.messaging.celery_setup`, so the code that sends tasks never imports this package.
"""
