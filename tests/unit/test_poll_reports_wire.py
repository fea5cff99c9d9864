"""The wire of reports riding on the poll (issue 18): a poll's `reports` and their base model."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from syncopate.manager.openapi import document
from syncopate.protocol import (
    MAX_POLL_REPORTS,
    NodeAuth,
    ProjectReport,
    StatusRequest,
    UpdateRequest,
)

REPORT: dict[str, Any] = {
    "project-name": "counter",
    "project-url": "https://example.com/counter.git",
    "status": "running",
    "pid": None,
    "log-stream": "s1",
    "log-seq": 3,
    "log-lines": ["a", "b"],
}
AUTH = {"name": "pi-1", "access-token": "t0k"}


def test_a_project_report_is_an_update_without_the_node_credentials() -> None:
    report = ProjectReport.model_validate(REPORT)
    update = UpdateRequest.model_validate({**AUTH, **REPORT})
    assert set(UpdateRequest.model_fields) == set(ProjectReport.model_fields) | {
        "name",
        "access_token",
    }
    assert isinstance(update, NodeAuth) and isinstance(update, ProjectReport)
    assert report.model_dump() == update.model_dump(exclude={"name", "access_token"})
    # What was sent is what applying a report reads (a null pid: nothing runs).
    assert "pid" in report.model_fields_set and "exit_code" not in report.model_fields_set


def test_the_report_checks_stay_with_the_base_model() -> None:
    with pytest.raises(ValidationError, match="sent together"):
        ProjectReport.model_validate({**REPORT, "log-seq": None})
    # The seed's usage fields, read in either model.
    seed = {**REPORT, "project-ram": 12.5, "project-storage": 2048}
    for model in (ProjectReport, UpdateRequest):
        got = model.model_validate({**AUTH, **seed})
        assert (got.ram_usage, got.disk_usage) == (12.5, 2.0)
    # An update still needs the node's credentials.
    with pytest.raises(ValidationError, match="access-token"):
        UpdateRequest.model_validate({"name": "pi-1", **REPORT})


def test_a_poll_without_reports_is_the_seeds_poll() -> None:
    poll = StatusRequest.model_validate({**AUTH, "wait": 5})
    assert poll.reports is None


def test_a_polls_reports_are_objects_checked_one_by_one_later() -> None:
    # One bad report must not fail the node's poll: the route checks each (and refuses it).
    poll = StatusRequest.model_validate(
        {**AUTH, "reports": [REPORT, {"project-name": "x", "status": 7}]}
    )
    assert poll.reports is not None and len(poll.reports) == 2
    with pytest.raises(ValidationError):
        StatusRequest.model_validate({**AUTH, "reports": ["not an object"]})


def test_a_polls_reports_are_bounded() -> None:
    StatusRequest.model_validate({**AUTH, "reports": [REPORT] * MAX_POLL_REPORTS})
    with pytest.raises(ValidationError, match="reports"):
        StatusRequest.model_validate({**AUTH, "reports": [REPORT] * (MAX_POLL_REPORTS + 1)})


def test_a_form_carries_reports_as_json_text() -> None:
    poll = StatusRequest.model_validate({**AUTH, "reports": '[{"project-name": "a"}]'})
    assert poll.reports == [{"project-name": "a"}]


def test_the_openapi_document_describes_a_polls_reports() -> None:
    schemas = document()["components"]["schemas"]
    reports = schemas["StatusRequest"]["properties"]["reports"]
    (array,) = [v for v in reports["anyOf"] if v.get("type") == "array"]
    assert array["items"] == {"$ref": "#/components/schemas/ProjectReport"}
    assert array["maxItems"] == MAX_POLL_REPORTS
    report = set(schemas["ProjectReport"]["properties"])
    assert report | {"name", "access-token"} == set(schemas["UpdateRequest"]["properties"])
    summary = document()["paths"]["/node-status"]["post"]["summary"]
    assert "refused" in summary and "held" in summary
