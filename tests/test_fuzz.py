"""Fuzzing every operation of /openapi.json: no input answers 5xx, and every answer matches
the schema (declared status, content type, headers and body). Positive and negative data,
a fixed seed (derandomized Hypothesis) and a bounded number of examples per operation keep
it repeatable and within the suite's time budget."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import both_databases
from live_server import serving

EXAMPLES_PER_OPERATION = 12
#: How long an event stream is read: ``/events/stream`` never ends, and schemathesis would
#: otherwise read each one for its 10 s request timeout (two minutes of every run).
STREAM_READ_SECONDS = 0.5
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _fuzz(operation: Any, mode: GenerationMode) -> str | None:
    """The first failure of ``operation`` with ``mode`` data, or None."""
    # The events that arrive in that time are checked like any other answer.
    call = {"timeout": STREAM_READ_SECONDS} if operation.path.endswith("/stream") else {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS, **call)

    try:
        run()
    except Unsatisfiable:
        # No invalid input exists for it (no parameters, or free-form text only).
        assert mode == GenerationMode.NEGATIVE
    except (Exception, BaseExceptionGroup) as exc:
        return f"{operation.method.upper()} {operation.path} ({mode.value}): {str(exc)[:1500]}"
    return None


@both_databases
def test_no_input_answers_5xx_or_breaks_the_schema(settings_env: dict[str, str]) -> None:
    from embedtune.app import create_app

    with serving(create_app()) as url:
        # The first /openapi.json builds the whole schema: allow a busy machine its time.
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=60)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15
        failures = [
            failure
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if (failure := _fuzz(operation, mode)) is not None
        ]
    assert not failures, "\n\n".join(failures)
