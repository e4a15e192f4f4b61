"""Configuration: the LiteLLM YAML and `.env` read once into a frozen `Config` (`types.py`)."""
