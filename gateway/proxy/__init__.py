"""The proxy: one request from route to response (``exchange``), Kong's router (``router``), and the state every
connection of a process shares (``state``), where the downstream and upstream sides meet.
"""
