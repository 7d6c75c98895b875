"""Web routes: thin handlers that parse, call a service and render."""
