"""What the S3 artifact tests share besides fixtures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Where the artifacts live inside the test bucket.
PREFIX = "embedtune/artifacts"


@dataclass(frozen=True)
class Bucket:
    """The test's bucket, with a client to look inside it."""

    name: str
    client: Any

    def keys(self, under: str) -> list[str]:
        response = self.client.list_objects_v2(Bucket=self.name, Prefix=f"{PREFIX}/{under}")
        return sorted(entry["Key"] for entry in response.get("Contents", []))

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body
