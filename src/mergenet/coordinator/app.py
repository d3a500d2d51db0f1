"""The coordinator's HTTP API (FastAPI; OpenAPI at ``/docs``): thin routes over the services.

Errors are JSON ``{"detail": "<what to fix>"}`` with a 4xx status; no rejection writes anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from mergenet.coordinator import queries, serving
from mergenet.coordinator.runtime import Coordinator
from mergenet.coordinator.submissions import SubmissionError, Upload
from mergenet.coordinator.web.routes import web_router


def create_app(coord: Coordinator) -> FastAPI:
    app = FastAPI(
        title="mergenet coordinator",
        version="1",
        description="Submit fine-tuning deltas; watch the core model improve.",
    )

    @contextmanager
    def session() -> Iterator[Session]:
        with coord.factory() as s:
            try:
                yield s
            except queries.NotFound as exc:
                raise HTTPException(404, str(exc)) from None

    @app.exception_handler(SubmissionError)
    async def _rejected(_: Request, exc: SubmissionError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.post("/api/contributions", status_code=201, summary="Submit a signed delta")
    def submit(
        file: Annotated[
            UploadFile,
            File(description="the delta as safetensors, or a PEFT adapter_model.safetensors"),
        ],
        address: Annotated[str, Form(description="contributor address (0x…)")],
        parent_hash: Annotated[str, Form(description="hash of the version fine-tuned")],
        nonce: Annotated[str, Form(description="single-use integer")],
        signature: Annotated[
            str, Form(description="EIP-191 signature over (sha256, parent, nonce, chain id)")
        ],
        adapter_config: Annotated[
            UploadFile | None,
            File(description="adapter_config.json, when uploading a PEFT LoRA adapter"),
        ] = None,
    ) -> dict[str, Any]:
        row = coord.submissions.submit(
            Upload(address=address, parent_hash=parent_hash, nonce=nonce, signature=signature),
            file.file,
            adapter_config.file.read() if adapter_config is not None else None,
        )
        return queries.contribution_json(row)

    @app.get("/api/contributions/{sha256}", summary="Status, score and reward of a contribution")
    def get_contribution(sha256: str) -> dict[str, Any]:
        with session() as s:
            return queries.contribution(s, sha256)

    @app.get("/api/versions", summary="Every accepted version, oldest first")
    def list_versions() -> list[dict[str, Any]]:
        with session() as s:
            return queries.versions(s)

    @app.get("/api/versions/current", summary="The current core version")
    def current() -> dict[str, Any]:
        with session() as s:
            return queries.current(s)

    @app.get(
        "/api/versions/{version_hash}/weights",
        summary="A version's HF folder as .tar.gz ('current' for the newest)",
        response_class=Response,
    )
    def weights(version_hash: str) -> Response:
        with session() as s:
            v = queries.version(s, version_hash)
            folder = coord.store.root / v.weights_path
            name = v.hash[:16]
        return Response(
            queries.archive(folder, name),
            media_type="application/gzip",
            headers={
                "Content-Disposition": f'attachment; filename="mergenet-{name}.tar.gz"',
                "X-Mergenet-Version": v.hash,
            },
        )

    @app.get(
        "/api/deltas/{sha256}",
        summary="A stored delta by sha256 (safetensors; a LoRA adapter as .tar.gz), for workers",
        response_class=Response,
    )
    def delta_file(sha256: str) -> Response:
        try:
            d = serving.delta(coord.store, sha256)
        except serving.BadHash as exc:
            raise HTTPException(422, str(exc)) from None
        except queries.NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        headers = {"X-Mergenet-Sha256": d.sha256, "X-Mergenet-Delta-Kind": d.kind}
        if d.kind == serving.DENSE:
            return FileResponse(d.path, media_type="application/octet-stream", headers=headers)
        return Response(d.body(), media_type="application/gzip", headers=headers)

    @app.get(
        "/api/rows/{sha256}",
        summary="A Dharma row set (JSONL) the loop scores on, by sha256, for workers",
        response_class=Response,
    )
    def row_set(sha256: str) -> Response:
        try:
            path = coord.row_sets.path(sha256)
        except serving.BadHash as exc:
            raise HTTPException(422, str(exc)) from None
        except queries.NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return FileResponse(
            path, media_type="application/x-ndjson", headers={"X-Mergenet-Sha256": sha256.lower()}
        )

    @app.get("/api/versions/{version_hash}/recipe", summary="A version's recipe (JSON)")
    def recipe(version_hash: str) -> dict[str, Any]:
        with session() as s:
            return queries.recipe(s, version_hash)

    @app.get(
        "/api/versions/{version_hash}/recipe.yaml",
        summary="A version's recipe as mergekit YAML",
        response_class=PlainTextResponse,
    )
    def recipe_yaml(version_hash: str) -> PlainTextResponse:
        with session() as s:
            return PlainTextResponse(
                queries.mergekit_yaml(s, version_hash), media_type="application/yaml"
            )

    @app.get("/api/history", summary="Score over time, accepted versions, contributions")
    def history() -> dict[str, Any]:
        with session() as s:
            return queries.history(s)

    @app.get("/api/strategies", summary="H(s) now and over time")
    def strategies() -> dict[str, Any]:
        with session() as s:
            return queries.strategies(s)

    @app.get("/api/rewards/{address}", summary="Accrued, published and claimable rewards")
    def rewards(address: str) -> dict[str, Any]:
        from mergenet.rewards.ledger import LedgerError
        from mergenet.rewards.service import rewards_for_address

        contracts = coord.chain.contracts if coord.chain is not None else None
        with session() as s:
            try:
                return rewards_for_address(s, address, contracts).to_json()
            except LedgerError as exc:
                raise HTTPException(422, str(exc)) from None

    @app.get("/api/info", summary="What a node needs before signing: chain id, current version")
    def info() -> dict[str, Any]:
        with session() as s:
            current_hash = queries.current(s)["hash"]
        return {
            "chain_id": coord.settings.chain_id,
            "current_version": current_hash,
            "rewards_on_chain": coord.chain is not None,
        }

    @app.get("/api/chain", summary="Where the reward contracts live (for claims)")
    def chain_info() -> dict[str, Any]:
        if coord.chain is None:
            raise HTTPException(
                404, "this coordinator runs without a chain: rewards are not paid on chain"
            )
        return coord.chain.public_json()

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def metrics() -> PlainTextResponse:
        with session() as s:
            text = queries.metrics_text(s, coord.pool.in_flight())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(web_router(coord))
    return app
