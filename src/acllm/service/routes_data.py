"""Indexes and ingestion jobs: list indexes, start an ingest (202 + job id), follow a job."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from acllm.errors import NotFoundError
from acllm.service.jobs import IngestRequest
from acllm.service.routes_common import Svc, admit

router = APIRouter(tags=["indexes"])


class IngestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        min_length=1,
        description="a file or folder as the server sees it, or an SQLAlchemy URL",
    )
    table: str | None = Field(default=None, description="table to read (database URL)")
    query: str | None = Field(default=None, description="read-only SQL query (database URL)")
    key: str | None = Field(default=None, description="primary-key column for citations")
    include: list[str] | None = Field(default=None, description="only files matching these globs")
    ignore: list[str] = Field(default_factory=list, description="skip files matching these globs")


@router.get("/v1/indexes")
async def list_indexes(request: Request, svc: Svc) -> dict[str, Any]:
    await admit(request, "ingest")

    runtime = svc.runtime  # on the loop's thread: the Runtime's caches are not thread-safe
    return {"data": [{**runtime.index(n).stats(), "name": n} for n in runtime.index_names()]}


@router.post("/v1/indexes/{name}/ingest", status_code=202)
async def ingest(name: str, body: IngestBody, request: Request, svc: Svc) -> JSONResponse:
    await admit(request, "ingest")
    req = IngestRequest(
        index=name,
        target=body.path,
        table=body.table,
        query=body.query,
        key=body.key,
        include=body.include,
        ignore=body.ignore,
    )
    job = svc.jobs.start_ingest(req)
    return JSONResponse(job, status_code=202, headers={"Location": f"/v1/jobs/{job['id']}"})


@router.get("/v1/jobs/{job_id}")
async def get_job(job_id: str, request: Request, svc: Svc) -> dict[str, Any]:
    await admit(request, "ingest")
    job = svc.jobs.get(job_id)
    if job is None:
        raise NotFoundError(f"no job '{job_id}'", hint="job states are kept for 7 days")
    return job
