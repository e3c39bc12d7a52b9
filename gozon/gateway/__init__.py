"""The gateway: the public HTTP API (a proxy to the services) and the WebSocket hub."""
