"""Petals tests: a package, so that the swarm fixture ends with these tests."""
