"""Celery worker tests: a package, so that the Redis fixture ends with these tests."""
