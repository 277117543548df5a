"""hostd's clients of other services: one adapter per service, on a bus connection passed in.

Start from hostd.bus.services.Services; names in hostd.bus.names; exceptions in hostd.bus.errors.
"""
