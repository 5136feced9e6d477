"""Flask extension objects, created unbound so the app factory can bind them."""

from typing import Any

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()

# What code given "a session" accepts: a plain one, or Flask-SQLAlchemy's `db.session`.
AnySession = Session | scoped_session[Any]
