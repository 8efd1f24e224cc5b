"""HTTP routes of the embedding model registry."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from embedtune.core.db import SessionDep, transaction
from embedtune.core.errors import error_responses
from embedtune.core.pagination import TOTAL_COUNT_HEADER, PageDep, set_total
from embedtune.core.path_params import LongId
from embedtune.models import service
from embedtune.models.files import model_files
from embedtune.models.schemas import ModelCreate, ModelOut

router = APIRouter(prefix="/models", tags=["models"])


@router.get(
    "",
    response_model=list[ModelOut],
    responses={
        200: {"headers": {TOTAL_COUNT_HEADER: {"schema": {"type": "integer"}}}},
        **error_responses(422),
    },
)
def list_models(session: SessionDep, page: PageDep, response: Response) -> list[ModelOut]:
    """Registered models, newest first."""
    models, total = service.list_models(session, page.offset, page.limit)
    set_total(response, total)
    return [ModelOut.model_validate(model) for model in models]


@router.post("", status_code=201, response_model=ModelOut, responses=error_responses(409, 422))
def register_model(body: ModelCreate, session: SessionDep, response: Response) -> ModelOut:
    """Register a model directory that exists on the server (loaded once to validate it)."""
    with transaction(session):
        model = service.register_model(session, body)
    response.headers["Location"] = f"/models/{model.id}"
    return ModelOut.model_validate(model)


@router.get("/{model_id}", response_model=ModelOut, responses=error_responses(404))
def get_model(model_id: LongId, session: SessionDep) -> ModelOut:
    return ModelOut.model_validate(service.get_model(session, model_id))


class _Chunks:
    """A write-only file that tarfile streams into."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def _tar_gz(directory: Path, root_name: str) -> Iterator[bytes]:
    sink = _Chunks()
    with tarfile.open(fileobj=sink, mode="w|gz") as archive:  # type: ignore[call-overload]
        for path in model_files(directory):
            archive.add(path, arcname=f"{root_name}/{path.relative_to(directory)}", recursive=False)
            yield from sink.drain()
    yield from sink.drain()


@router.get(
    "/{model_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {}}}, **error_responses(404)},
)
def download_model(model_id: LongId, session: SessionDep) -> StreamingResponse:
    """The model's files (configs, weights, tokenizer, modules, exports) as a ``.tar.gz``."""
    model = service.get_model(session, model_id)
    directory = service.model_directory(model)
    return StreamingResponse(
        _tar_gz(directory, model.id),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{model.id}.tar.gz"'},
    )
