"""The application layer: commands, their handlers, and the bus that runs them transactionally."""
