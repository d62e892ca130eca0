"""Schema-driven fuzzing: schemathesis sends what the OpenAPI schema allows (and what it
does not) to the app in-process; whatever it sends, the server must not answer with 5xx.

A fake engine keeps accepted jobs instant; the number of examples is bounded so the run
stays within seconds.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from PIL import Image  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from impasto.web import ServerConfig, create_app  # noqa: E402

EXAMPLES = 100


class InstantRun:
    def __init__(self, content: Image.Image):
        self.image = content
        self.losses = {"content": 0.0, "style": 0.0, "tv": 0.0, "total": 0.0}
        self.stopped = "done"

    def run(self) -> Iterator[Any]:
        return iter(())

    def result(self, stopped: str | None = None) -> InstantRun:
        return self

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        self.image.save(path, format="PNG")


# Built at import: schemathesis.pytest.from_fixture() fails on pytest 9 (it reads a private
# attribute pytest no longer has), so the schema is loaded eagerly instead.
WORKDIR = tempfile.mkdtemp(prefix="impasto-fuzz-")
APP = create_app(
    ServerConfig(workdir=WORKDIR, device="cpu", max_queue=2, keep_jobs=2, max_upload_mb=0.5),
    engine=lambda content, styles, s: InstantRun(content),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _running_app() -> Iterator[None]:
    with TestClient(APP):  # the app's start-up and shut-down around the whole fuzz run
        yield
    shutil.rmtree(WORKDIR, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_errors(case: Any) -> None:
    # Beyond "no 5xx": every answer is one the schema documents, in the documented shape.
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
