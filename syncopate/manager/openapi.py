"""The manager's API as an OpenAPI 3.1 document, served at GET /openapi.json (DESIGN §3, §14).

Request schemas come from the wire models in syncopate.protocol (`model_json_schema`), so the
document cannot drift from what the handlers accept; a form body is described as the same
fields, each a string (a dictionary or list field holds JSON or a Python literal). It is a
description only: no secrets, no state.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from syncopate import __version__
from syncopate.command_protocol import (
    CommandAnalyze,
    CommandQuery,
    CommandRef,
    CommandResultRequest,
    CommandSend,
    HwRequest,
)
from syncopate.project_protocol import (
    AddProject,
    RemoveProject,
    Rollout,
    SetProject,
    SetVariables,
)
from syncopate.protocol import (
    ACTIONS,
    ControllerRequest,
    InitializeRequest,
    LeaveRequest,
    NodeLabel,
    ProjectReport,
    StatusRequest,
    TokenMake,
    TokenRef,
    UpdateRequest,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
REF = "#/components/schemas/{model}"
MODELS: tuple[type[BaseModel], ...] = (
    InitializeRequest,
    StatusRequest,
    ProjectReport,
    UpdateRequest,
    LeaveRequest,
    CommandResultRequest,
    ControllerRequest,
    AddProject,
    SetProject,
    SetVariables,
    RemoveProject,
    Rollout,
    CommandSend,
    CommandQuery,
    CommandRef,
    CommandAnalyze,
    HwRequest,
    NodeLabel,
    TokenMake,
    TokenRef,
)
# The model whose fields an action adds to the controller request, besides `projects`/`node`.
ACTION_FIELDS: dict[str, type[BaseModel]] = {
    "command-send": CommandSend,
    "command-list": CommandQuery,
    "command-show": CommandRef,
    "command-analyze": CommandAnalyze,
    "command-cancel": CommandRef,
    "set-variables": SetVariables,
    "node-label": NodeLabel,
    "rollout": Rollout,
    "token-make": TokenMake,
    "token-revoke": TokenRef,
}
ACTION_PROJECT: dict[str, type[BaseModel]] = {
    "add": AddProject,
    "set": SetProject,
    "remove": RemoveProject,
}
ANSWERS = {
    "200": "done; the route's result field says success",
    "400": "malformed or invalid input (the reason names the field)",
    "401": "wrong password or token",
    "403": "not yours, or the controller token's role does not allow it (the answer names both)",
    "404": "no such project, node or command",
    "405": "this operation changes state: send it with POST",
    "409": "not valid in the current state",
    "413": "body or variables over the limit",
    "429": "too many wrong credentials of this kind from this address: locked out of them "
    "(see Retry-After)",
}


def _answers(*statuses: str) -> dict[str, Any]:
    # Every route that takes a credential (a 401) is throttled too (manager/guard.py).
    shown = ("200", "400", *statuses, *(("429",) if "401" in statuses else ()))
    return {
        status: {
            "description": ANSWERS[status],
            "content": {JSON: {"schema": {"$ref": REF.format(model="Answer")}}},
        }
        for status in shown
    }


def _schemas() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(model, "validation") for model in MODELS], by_alias=True, ref_template=REF
    )
    schemas: dict[str, Any] = defs["$defs"]
    controller = schemas["ControllerRequest"]
    controller["properties"]["action"]["enum"] = list(ACTIONS)
    # The poll's reports are checked one by one (a bad one is refused alone), so the model
    # takes any objects; each must be a ProjectReport to be taken.
    reports = schemas["StatusRequest"]["properties"]["reports"]
    for variant in reports["anyOf"]:
        if variant.get("type") == "array":
            variant["items"] = {"$ref": REF.format(model="ProjectReport")}
    schemas["Answer"] = {
        "type": "object",
        "description": "Every answer carries the route's result fields (the seed's): "
        "initialization-result/failure-reasoning, update-result/update-info, or "
        "request-status/request-information, and the seed's numeric `code` (0 success; 1 join "
        "refused; 100 unknown node; 101 wrong token; 102 project not on this node; 103 project "
        "URL does not match; else the HTTP status); errors also carry `failure-reasoning` and "
        "`error`.",
        "properties": {"code": {"type": "integer"}},
        "additionalProperties": True,
    }
    return schemas


def _form_of(schema: dict[str, Any]) -> dict[str, Any]:
    """The form version of a body schema: the same fields and required ones, each a string."""
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in schema.get("properties", {})},
        "required": list(schema.get("required", [])),
    }


def _body(schemas: dict[str, Any], model: str, form: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": {"$ref": REF.format(model=model)}}}
    if form:
        content[FORM] = {"schema": _form_of(schemas[model])}
    return {"required": True, "content": content}


def _controller_body(schemas: dict[str, Any]) -> dict[str, Any]:
    """One variant per action: the controller fields plus what that action takes."""
    base = schemas["ControllerRequest"]
    variants = []
    for action in ACTIONS:
        variant = copy.deepcopy(base)
        variant["title"] = f"action {action}"
        variant["properties"]["action"] = {"const": action, "type": "string"}
        if action in ACTION_PROJECT:
            model = ACTION_PROJECT[action].__name__
            variant["properties"]["project"] = {"$ref": REF.format(model=model)}
            variant["required"] = [*variant.get("required", []), "project"]
        if action in ACTION_FIELDS:
            extra = schemas[ACTION_FIELDS[action].__name__]
            variant["properties"].update(extra.get("properties", {}))
            variant["required"] = sorted({*variant.get("required", []), *extra.get("required", [])})
        variants.append(variant)
    return {
        "required": True,
        "content": {
            JSON: {"schema": {"oneOf": variants}},
            FORM: {"schema": _form_of(base)},
        },
    }


def _post(summary: str, body: dict[str, Any], *statuses: str) -> dict[str, Any]:
    return {"post": {"summary": summary, "requestBody": body, "responses": _answers(*statuses)}}


@cache
def _document() -> dict[str, Any]:
    schemas = _schemas()
    hw = schemas["HwRequest"]
    hw_query = [
        {
            "name": name,
            "in": "query",
            "required": name in hw.get("required", []),
            "schema": prop,
        }
        for name, prop in hw["properties"].items()
    ]
    text = {"text/plain": {"schema": {"type": "string"}}}
    paths: dict[str, Any] = {
        "/node-initialize": _post(
            "A node joins: name, token", _body(schemas, "InitializeRequest"), "401", "413", "429"
        ),
        "/node-status": _post(
            "A node's assignments and commands (a long poll with `wait`); the node's "
            "`reports` on its projects ride on it, each taken as /node-update takes one. The "
            "answer's `refused` holds each report refused (by project: code, reason and the "
            "HTTP status /node-update would have answered) and `held` the seconds it was held",
            _body(schemas, "StatusRequest"),
            "401",
            "413",
        ),
        "/node-update": _post(
            "A node reports on a project",
            _body(schemas, "UpdateRequest"),
            "401",
            "403",
            "404",
            "409",
            "413",
        ),
        "/node-leave": _post(
            "A node leaves; its projects move", _body(schemas, "LeaveRequest"), "401", "413"
        ),
        "/node-command-result": _post(
            "A node answers a command it collected",
            _body(schemas, "CommandResultRequest"),
            "401",
            "404",
            "409",
            "413",
        ),
        "/controller": {
            "post": {
                "summary": "Controller actions: " + ", ".join(ACTIONS),
                "security": [{"bearer": []}, {}],
                "requestBody": _controller_body(schemas),
                "responses": _answers("401", "403", "404", "409", "413"),
            }
        },
        "/hw_supervisor": {
            "get": {
                "summary": "The hardware_synchronizer protocol: status_query only",
                "parameters": hw_query,
                "responses": _answers("401", "403", "404", "405", "409"),
            },
            "post": {
                "summary": "The hardware_synchronizer protocol (a form, as the seed sends)",
                "requestBody": {
                    "required": True,
                    "content": {FORM: {"schema": _form_of(hw)}, JSON: {"schema": hw}},
                },
                "responses": _answers("401", "403", "404", "409", "413"),
            },
        },
        "/events": {
            "get": {
                "summary": "WebSocket: a snapshot, then changes (controller token)",
                "security": [{"bearer": []}, {}],
                "parameters": [
                    {"name": "access-token", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "logs",
                        "in": "query",
                        "description": "projects whose new output lines to follow (*: all)",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "101": {"description": "switching to the WebSocket"},
                    **_answers("401"),
                },
            }
        },
        "/health": {
            "get": {
                "summary": "Liveness and counts (no auth)",
                "responses": {"200": {"description": "ok", "content": {JSON: {"schema": {}}}}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text format (no auth, no secrets)",
                "responses": {"200": {"description": "metrics", "content": text}},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {JSON: {}}}},
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Syncopate manager",
            "version": __version__,
            "description": "Errors use real HTTP statuses (4xx for a refused request) and "
            "still carry the `result` and `reason` fields the original node and controller "
            "clients read. A request on /node-initialize, /node-status or /node-update without "
            "the `Syncopate-Agent` header comes from such an original client: its errors are "
            "answered with HTTP 200 and the same body, as those clients expect.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change theirs)."""
    return copy.deepcopy(_document())
