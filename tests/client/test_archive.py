"""Unpacking a model archive: all or nothing, never outside the target folder."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from embedtune.client import EmbedtuneClientError, InvalidModelArchive, extract_model_archive


def _archive(path: Path, *, link_to: str | None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        data = b"{}"
        member = tarfile.TarInfo("model/config.json")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
        if link_to is not None:
            link = tarfile.TarInfo("model/escape")
            link.type = tarfile.SYMTYPE
            link.linkname = link_to
            tar.addfile(link)
    return path


@pytest.mark.parametrize("link_to", ["/", "/etc/passwd", "../../outside"])
def test_archive_with_a_link_out_of_the_folder_is_refused_leaving_nothing(
    tmp_path: Path, link_to: str
) -> None:
    archive = _archive(tmp_path / "bad.tar.gz", link_to=link_to)
    target = tmp_path / "out"
    with pytest.raises(InvalidModelArchive) as raised:
        extract_model_archive(archive, target)
    assert isinstance(raised.value, EmbedtuneClientError)
    assert list(target.iterdir()) == []


def test_archive_unpacks_into_its_model_folder(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "good.tar.gz", link_to=None)
    folder = extract_model_archive(archive, tmp_path / "out")
    assert folder == tmp_path / "out" / "model"
    assert (folder / "config.json").read_text() == "{}"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model"]
