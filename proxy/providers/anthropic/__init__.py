"""Anthropic's Messages API as an upstream: request, answer, stream and error translation."""
