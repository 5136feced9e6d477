"""The write model in PostgreSQL: tables, the arena repository and the unit of work."""
