"""The domain: pure Python. No Flask, SQLAlchemy, Kafka or Redis may be imported here."""
