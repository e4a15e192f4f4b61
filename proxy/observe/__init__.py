"""What the proxy shows about itself: the state document, Prometheus metrics, admin actions."""
