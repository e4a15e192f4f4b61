"""Several instances acting as one: routing state shared through Redis."""
