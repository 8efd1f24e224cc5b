"""An S3-compatible object store, used for artifacts when ``EMBEDTUNE_ARTIFACTS_URL`` is set.

boto3 is imported only when a store is first used, so the default install does without it
(``pip install 'embedtune[s3]'``). Credentials and region come from the usual AWS
environment variables and files; the endpoint from ``EMBEDTUNE_S3_ENDPOINT_URL``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

logger = logging.getLogger(__name__)

SCHEME = "s3://"


def is_object_uri(path_or_uri: str) -> bool:
    return path_or_uri.startswith(SCHEME)


@dataclass(frozen=True)
class ObjectLocation:
    """An object, or a "directory" of objects sharing the key prefix ``key/``."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> ObjectLocation:
        """Raises ValueError unless ``uri`` is ``s3://bucket[/key]`` with no ``..`` in the key."""
        if not is_object_uri(uri):
            raise ValueError(f"not an {SCHEME} URI: {uri!r}")
        bucket, _, key = uri[len(SCHEME) :].partition("/")
        parts = [part for part in key.split("/") if part]
        if not bucket or ".." in parts:
            raise ValueError(f"invalid object store URI: {uri!r}")
        return cls(bucket, "/".join(parts))

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"

    def child(self, *names: str) -> ObjectLocation:
        return ObjectLocation(self.bucket, "/".join(filter(None, (self.key, *names))))


class ObjectStore:
    """Uploads, downloads and deletes files and directories of files on one endpoint."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def upload_file(self, source: Path, target: ObjectLocation) -> None:
        self._client.upload_file(str(source), target.bucket, target.key)

    def upload_tree(self, source: Path, target: ObjectLocation) -> None:
        """Uploads every file under ``source`` to ``target/<relative path>``; on failure the
        objects already uploaded are deleted again before the error is raised."""
        try:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    relative = path.relative_to(source).as_posix()
                    self.upload_file(path, target.child(relative))
        except BaseException:
            self.delete_tree(target)
            raise

    def download_file(self, source: ObjectLocation, target: Path) -> None:
        """Raises FileNotFoundError if there is no such object."""
        from botocore.exceptions import ClientError

        try:
            self._client.download_file(source.bucket, source.key, str(target))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                raise FileNotFoundError(f"no object at {source.uri}") from exc
            raise

    def download_tree(self, source: ObjectLocation, target: Path) -> int:
        """Downloads every object under ``source/`` into ``target``; returns how many."""
        count = 0
        for key in self._keys(source):
            relative = PurePosixPath(key[len(source.key) + 1 :])
            if ".." in relative.parts:
                raise ValueError(f"unsafe object key {key!r} under {source.uri}")
            path = target.joinpath(*relative.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.download_file(ObjectLocation(source.bucket, key), path)
            count += 1
        return count

    def delete_tree(self, location: ObjectLocation) -> None:
        """Deletes every object under ``location/``."""
        keys = list(self._keys(location))
        # DeleteObjects takes at most 1,000 keys a request.
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start : start + 1000]]
            self._client.delete_objects(
                Bucket=location.bucket, Delete={"Objects": objects, "Quiet": True}
            )

    def delete_file(self, location: ObjectLocation) -> None:
        self._client.delete_object(Bucket=location.bucket, Key=location.key)

    def _keys(self, location: ObjectLocation) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=location.bucket, Prefix=f"{location.key}/"):
            for entry in page.get("Contents", []):
                yield str(entry["Key"])


@lru_cache
def get_object_store(endpoint_url: str) -> ObjectStore:
    """The store on ``endpoint_url`` (AWS itself when empty); one client, shared by threads."""
    import boto3

    # A session of its own: boto3's default session must not be shared between threads.
    client = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None)
    logger.info("object store client created for endpoint %s", endpoint_url or "AWS")
    return ObjectStore(client)
