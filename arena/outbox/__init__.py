"""The transactional outbox: moving committed events from PostgreSQL to Kafka."""
