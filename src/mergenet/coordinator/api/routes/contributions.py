"""``/api/contributions``: submit a signed delta, read a contribution's status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from mergenet.coordinator import queries
from mergenet.coordinator.api import schemas
from mergenet.coordinator.api.deps import CoordinatorDep, SessionDep
from mergenet.coordinator.api.errors import documented
from mergenet.coordinator.submissions import Upload
from mergenet.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PaymentRequired,
    RateLimited,
    TooLarge,
    Unauthorized,
    UnsupportedMediaType,
)

router = APIRouter(prefix="/api/contributions", tags=["contributions"])


@router.post(
    "",
    status_code=201,
    summary="Submit a signed delta",
    response_model=schemas.ContributionStatus,
    responses=documented(
        InvalidInput,
        UnsupportedMediaType,
        Unauthorized,
        PaymentRequired,
        Conflict,
        TooLarge,
        RateLimited,
    )
    | {400: {"model": schemas.Problem, "description": "The body is not multipart form data"}},
)
def submit(
    coord: CoordinatorDep,
    file: Annotated[
        UploadFile,
        File(description="the delta as safetensors, or a PEFT adapter_model.safetensors"),
    ],
    address: Annotated[str, Form(description="contributor address (0x…)")],
    parent_hash: Annotated[str, Form(description="hash of the version fine-tuned")],
    nonce: Annotated[str, Form(description="single-use integer")],
    signature: Annotated[
        str, Form(description="EIP-712 signature (Contribution; domain from GET /api/info)")
    ],
    adapter_config: Annotated[
        UploadFile | None,
        File(description="adapter_config.json, when uploading a PEFT LoRA adapter"),
    ] = None,
) -> Any:
    row = coord.submissions.submit(
        Upload(address=address, parent_hash=parent_hash, nonce=nonce, signature=signature),
        file.file,
        adapter_config.file.read() if adapter_config is not None else None,
    )
    return queries.contribution_json(row)


@router.get(
    "/{sha256}",
    summary="Status, score and reward of a contribution",
    response_model=schemas.ContributionDetail,
    responses=documented(NotFound),
)
def get_contribution(session: SessionDep, sha256: str) -> Any:
    return queries.contribution(session, sha256)
