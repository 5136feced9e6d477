"""The query side: arena views built from events and kept in Redis."""
