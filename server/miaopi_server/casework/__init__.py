"""Casework (办件): the work a decision opens, its states, owners and working-day deadlines.

Pure domain, no I/O: the audit store keeps cases and records their transitions, the edge
serves them to reviewers.
"""
