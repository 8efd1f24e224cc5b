"""Unpacking a downloaded model archive, all or nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Self

from embedtune.client.errors import InvalidModelArchive


def model_archive_path(model_id: str) -> str:
    """The route that streams a model as ``.tar.gz``."""
    return f"/models/{model_id}/download"


def extract_model_archive(archive: Path, directory: Path) -> Path:
    """Unpacks a downloaded ``.tar.gz`` into ``directory``; returns the model's folder.

    Unpacked into a scratch folder first, so an archive that fails half-way (the "data"
    filter refuses absolute paths, links out of the folder and devices) leaves nothing
    partial in ``directory``. Raises :class:`InvalidModelArchive`.
    """
    import tarfile  # only for downloads: not on every command's start

    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".embedtune-unpack-", dir=directory) as scratch:
        staging = Path(scratch)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise InvalidModelArchive(f"the model archive cannot be unpacked: {exc}") from exc
        roots = [(entry.name, entry.is_dir()) for entry in staging.iterdir()]
        shutil.copytree(staging, directory, symlinks=True, dirs_exist_ok=True)
    if len(roots) == 1 and roots[0][1]:
        return directory / roots[0][0]
    return directory


class ScratchArchive:
    """A scratch file to download a model archive into, removed on exit."""

    def __enter__(self) -> Self:
        self._scratch = tempfile.TemporaryDirectory()
        self.path = Path(self._scratch.name) / "model.tar.gz"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._scratch.cleanup()

    def unpack(self, directory: str | Path) -> Path:
        """Unpacks the downloaded archive into ``directory``; returns the model's folder."""
        return extract_model_archive(self.path, Path(directory))
