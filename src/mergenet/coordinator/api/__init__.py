"""The coordinator's HTTP API, laid out like the FastAPI full-stack template: ``deps`` (what a
route may ask for), ``routes/<resource>`` (thin routes over the services), ``schemas`` (public
response bodies), ``errors`` (domain error kinds → status codes), ``limits`` (the upload body
cap) and ``metrics`` (Prometheus). Assembled by :func:`mergenet.coordinator.app.create_app`."""
