"""The local stack of real components used by `make run` and the integration tests."""
