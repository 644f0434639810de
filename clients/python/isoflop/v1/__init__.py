"""Generated gRPC stubs of proto/isoflop/v1 (written at build time by setup.py)."""
