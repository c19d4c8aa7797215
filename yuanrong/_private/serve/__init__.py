"""Serving over HTTP and gRPC on Ray Serve: endpoints, the function gateway, the load-aware router."""
