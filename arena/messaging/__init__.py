"""Kafka adapters: topics, the event publisher and the consumer loop."""
