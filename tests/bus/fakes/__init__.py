"""Fake services for the bus tests, one per real service, exported with dbus-fast on a private bus."""
