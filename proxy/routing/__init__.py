"""Routing: groups, fallbacks and retries (router), the key pool (keys), one call (attempt)."""
