"""One router per resource; :func:`mergenet.coordinator.app.create_app` includes them all."""
