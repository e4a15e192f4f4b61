"""The one front door: the route table, auth, error rendering and the uvicorn server."""
