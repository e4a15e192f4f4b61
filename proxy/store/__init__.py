"""What the proxy keeps: the response cache, usage rows (SQLite or PostgreSQL) and prices."""
