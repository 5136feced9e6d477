"""Flower's configuration file (`celery -A tasks flower --conf=arena/flowerconfig.py`): Flower
executes it and takes the names that are its options. Basic auth from FLOWER_BASIC_AUTH, for
local runs the password made into var/credentials, so Flower never serves anyone who lacks it.
"""

from arena.settings import Settings

basic_auth = [Settings.from_env().flower_basic_auth]
