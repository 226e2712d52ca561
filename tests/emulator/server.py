#!/usr/bin/env python3
"""moto's server, plus Pipewarden's extension for what moto 5.2 lacks.

moto answers HTTP 500 with an HTML body for these operations; this module adds them:
  CodeDeploy   PutLifecycleEventHookExecutionStatus (recorded, see below), ListDeploymentTargets,
               BatchGetDeploymentTargets
  CodePipeline ListActionExecutions, GetPipelineState
and replaces moto's CodePipeline GetPipelineExecution (which knows only executions moto started
itself, with ids of its own and no artifact revisions) with one that answers from the executions
a test seeded, then from moto's. Its request is validated against the botocore service model that
ships with moto, as AWS validates it: a missing required member, or a value outside its length,
pattern or enum, is a ValidationException (HTTP 400); an unknown pipeline is a
PipelineNotFoundException and an unknown execution of a known pipeline a
PipelineExecutionNotFoundException (both HTTP 400, as the API reference documents).
CloudWatch ListTagsForResource answers as AWS does where moto answers an empty list: a ResourceARN
that is no ARN is InvalidParameterValue (400), one naming no alarm or Contributor Insights rule of
the account and region is ResourceNotFound (404).
The control API under /_pipewarden/, for tests and the local run:
  GET  /_pipewarden/hook-statuses        every PutLifecycleEventHookExecutionStatus call, in order
  POST /_pipewarden/deployment-targets   {"deploymentId", "targets": [DeploymentTarget, ...]} (AWS shape)
  POST /_pipewarden/action-executions    {"pipelineName", "actionExecutionDetails": [...]} (AWS shape)
  POST /_pipewarden/pipeline-state       GetPipelineState output for {"pipelineName", ...} (AWS shape)
  POST /_pipewarden/pipeline-executions  {"pipelineExecution": PipelineExecution} (AWS shape, with
                                         pipelineName and pipelineExecutionId): what
                                         GetPipelineExecution answers for it. Checked against the
                                         model's output shape (400 naming the member at fault);
                                         timestamps may be ISO 8601 and are sent as AWS sends them
                                         (epoch seconds)
  POST /_pipewarden/faults               {"operation", "status", "code", "count", "delayMs", "drop"}:
                                         the next `count` calls of that operation fail that way
  POST /_pipewarden/faults/clear         no more injected faults
  GET  /_pipewarden/calls                how many calls each operation received
Requests in the Smithy RPC v2 CBOR protocol (what the Rust SDK uses for CloudWatch) are translated to
the JSON protocol, which moto serves, and the answers back to CBOR.
POST /moto-api/reset clears all of it along with moto's own state.

Usage: server.py [--port N] [--no-stdin-watch]
Prints "PORT <n>" once listening on 127.0.0.1. Unless --no-stdin-watch, exits when its standard input
closes, so a test process that dies never leaves it behind.
"""

import argparse
import datetime
import io
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections import Counter

import botocore.session
import cbor2
from moto.cloudwatch.exceptions import InvalidParameterValue as CloudWatchInvalidParameterValue
from moto.cloudwatch.exceptions import ResourceNotFound as CloudWatchResourceNotFound
from moto.cloudwatch.responses import CloudWatchResponse
from moto.codedeploy.responses import CodeDeployResponse
from moto.codepipeline.responses import CodePipelineResponse
from moto.core.exceptions import JsonRESTError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

LOCK = threading.Lock()
STATE: dict = {}


def reset_state() -> None:
    with LOCK:
        STATE.clear()
        STATE.update(
            hook_statuses=[],
            deployment_targets={},
            action_executions={},
            pipeline_states={},
            pipeline_executions={},
            faults=[],
            calls=Counter(),
        )


reset_state()

HOOK_STATUSES = {"Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Unknown"}


def _body(response) -> dict:
    try:
        return json.loads(response.body or "{}")
    except ValueError:
        return {}


# --- CodeDeploy ------------------------------------------------------------------------------


def put_lifecycle_event_hook_execution_status(self):
    body = _body(self)
    deployment_id = body.get("deploymentId")
    hook_id = body.get("lifecycleEventHookExecutionId")
    status = body.get("status")
    if not deployment_id or not hook_id or status not in HOOK_STATUSES:
        raise JsonRESTError(
            "InvalidLifecycleEventHookExecutionStatusException",
            f"deploymentId, lifecycleEventHookExecutionId and a status in {sorted(HOOK_STATUSES)} are required",
        )
    # Raises DeploymentDoesNotExistException as AWS does for an unknown deployment.
    self.codedeploy_backend.get_deployment(deployment_id)
    with LOCK:
        done = [
            r
            for r in STATE["hook_statuses"]
            if r["lifecycleEventHookExecutionId"] == hook_id and r["status"] in ("Succeeded", "Failed")
        ]
        if done:
            raise JsonRESTError(
                "LifecycleEventAlreadyCompletedException",
                f"The lifecycle event {hook_id} has already completed with status {done[0]['status']}",
            )
        STATE["hook_statuses"].append(
            {
                "deploymentId": deployment_id,
                "lifecycleEventHookExecutionId": hook_id,
                "status": status,
                "time": time.time(),
            }
        )
    return json.dumps({"lifecycleEventHookExecutionId": hook_id})


def list_deployment_targets(self):
    body = _body(self)
    deployment_id = body.get("deploymentId")
    self.codedeploy_backend.get_deployment(deployment_id)
    with LOCK:
        targets = STATE["deployment_targets"].get(deployment_id, [])
    return json.dumps({"targetIds": [_target_id(t) for t in targets]})


def batch_get_deployment_targets(self):
    body = _body(self)
    deployment_id = body.get("deploymentId")
    self.codedeploy_backend.get_deployment(deployment_id)
    wanted = body.get("targetIds") or []
    with LOCK:
        targets = STATE["deployment_targets"].get(deployment_id, [])
    found = [t for t in targets if _target_id(t) in wanted]
    return json.dumps({"deploymentTargets": found}, default=str)


def _target_id(target: dict) -> str:
    for key in ("instanceTarget", "lambdaTarget", "ecsTarget", "cloudFormationTarget"):
        if key in target:
            return target[key].get("targetId", "")
    return ""


def register_deployment(payload: dict) -> dict:
    """Creates a deployment under the id an event names, so a sample or replayed hook event finds it."""
    from moto.codedeploy.models import codedeploy_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    backend = codedeploy_backends[payload.get("accountId", DEFAULT_ACCOUNT_ID)][payload.get("region", "us-east-1")]
    wanted = payload["deploymentId"]
    if wanted in backend.deployments:
        return {"deploymentId": wanted}
    application = payload.get("applicationName", "pipewarden-local")
    group = f"{application}-group"
    if application not in backend.applications:
        backend.create_application(application, payload.get("computePlatform", "Lambda"), None)
    if group not in backend.deployment_groups.get(application, {}):
        backend.create_deployment_group(
            application_name=application,
            deployment_group_name=group,
            deployment_config_name=None,
            ec2_tag_filters=None,
            on_premises_instance_tag_filters=None,
            auto_scaling_groups=None,
            service_role_arn="arn:aws:iam::123456789012:role/codedeploy",
            trigger_configurations=None,
            alarm_configuration=None,
            auto_rollback_configuration=None,
            outdated_instances_strategy=None,
            deployment_style=None,
            blue_green_deployment_configuration=None,
            load_balancer_info=None,
            ec2_tag_set=None,
            ecs_services=None,
            on_premises_tag_set=None,
            tags=None,
            termination_hook_enabled=None,
        )
    made = backend.create_deployment(
        application_name=application,
        deployment_group_name=group,
        revision=payload.get("revision"),
        deployment_config_name=None,
        description="registered by the Pipewarden emulator extension",
        ignore_application_stop_failures=None,
        target_instances=None,
        auto_rollback_configuration=None,
        update_outdated_instances_only=None,
        file_exists_behavior=None,
        override_alarm_configuration=None,
    )
    deployment = backend.deployments.pop(made)
    deployment.deployment_id = wanted
    backend.deployments[wanted] = deployment
    return {"deploymentId": wanted}


# --- CodePipeline ----------------------------------------------------------------------------


def list_action_executions(self):
    name = self._get_param("pipelineName")
    execution_filter = (self._get_param("filter") or {}).get("pipelineExecutionId")
    with LOCK:
        details = STATE["action_executions"].get(name, [])
    if execution_filter:
        details = [d for d in details if d.get("pipelineExecutionId") == execution_filter]
    return json.dumps({"actionExecutionDetails": details}, default=str)


def get_pipeline_state(self):
    name = self._get_param("name")
    with LOCK:
        state = STATE["pipeline_states"].get(name)
    if state is None:
        pipeline, _ = self.codepipeline_backend.get_pipeline(name)
        state = {
            "pipelineName": name,
            "pipelineVersion": pipeline.get("version", 1),
            "stageStates": [{"stageName": s["name"]} for s in pipeline.get("stages", [])],
        }
    return json.dumps(state, default=str)


# --- validation against the botocore service model ------------------------------------------------

_MODELS: dict = {}


def _service_model(service: str):
    with LOCK:
        if service not in _MODELS:
            _MODELS[service] = botocore.session.get_session().get_service_model(service)
        return _MODELS[service]


def _shape_problems(shape, value, path: str, unknown_members: bool = False) -> list[str]:
    """What AWS's validation would say of `value` as `shape`, one line per problem, in the wording
    of its ValidationException ("Value ... at '...' failed to satisfy constraint: ..."). With
    `unknown_members`, a member the model does not have is a problem too (for seeded answers,
    where it is a typo; services ignore unknown members of a request)."""
    problems = []
    kind = shape.type_name
    meta = shape.metadata
    where = path or shape.name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"Value at '{where}' failed to satisfy constraint: Member must be a structure"]
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(
                    f"Value null at '{path + '.' if path else ''}{name}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, member in value.items():
            if name not in shape.members:
                if unknown_members:
                    problems.append(f"Unknown member '{name}' at '{where}'")
            elif member is not None:
                member_path = f"{path + '.' if path else ''}{name}"
                problems += _shape_problems(shape.members[name], member, member_path, unknown_members)
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"Value at '{where}' failed to satisfy constraint: Member must be a list"]
        for i, item in enumerate(value):
            problems += _shape_problems(shape.member, item, f"{where}.{i + 1}.member", unknown_members)
        return problems
    if kind == "string":
        if not isinstance(value, str):
            return [f"Value at '{where}' failed to satisfy constraint: Member must be a string"]
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have length "
                f"between {meta.get('min', 0)} and {meta.get('max', 'unbounded')}"
            )
        # AWS checks the whole value against the pattern.
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy regular "
                f"expression pattern: {meta['pattern']}"
            )
        if "enum" in meta and value not in meta["enum"]:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum value "
                f"set: [{', '.join(meta['enum'])}]"
            )
        return problems
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"Value at '{where}' failed to satisfy constraint: Member must be an integer"]
        if "min" in meta and value < meta["min"]:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value greater "
                f"than or equal to {meta['min']}"
            )
        return problems
    if kind == "timestamp":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [f"Value at '{where}' failed to satisfy constraint: Member must be a timestamp"]
    return problems


def validate_request(service: str, operation: str, params: dict) -> None:
    """Raises the ValidationException AWS answers for a request that breaks the service model."""
    shape = _service_model(service).operation_model(operation).input_shape
    problems = _shape_problems(shape, params, "")
    if problems:
        count = len(problems)
        raise JsonRESTError(
            "ValidationException",
            f"{count} validation error{'s' if count > 1 else ''} detected: {'; '.join(problems)}",
        )


def _epoch_timestamps(shape, value):
    """Timestamps as the JSON protocol sends them (epoch seconds), from ISO 8601 or numbers."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: (_epoch_timestamps(shape.members[k], v) if k in shape.members else v) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_epoch_timestamps(shape.member, v) for v in value]
    if shape.type_name == "timestamp" and isinstance(value, str):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


def seed_pipeline_execution(payload: dict) -> tuple[str, dict]:
    """Checks a seeded execution against GetPipelineExecution's output shape; returns the control
    answer's status and body."""
    shape = _service_model("codepipeline").operation_model("GetPipelineExecution").output_shape
    execution_shape = shape.members["pipelineExecution"]
    execution = payload.get("pipelineExecution")
    if not isinstance(execution, dict) or not execution.get("pipelineName") or not execution.get("pipelineExecutionId"):
        return "400 Bad Request", {"error": "pipelineExecution with pipelineName and pipelineExecutionId is required"}
    try:
        execution = _epoch_timestamps(execution_shape, execution)
    except ValueError as e:
        return "400 Bad Request", {"error": f"a timestamp is neither ISO 8601 nor epoch seconds: {e}"}
    problems = _shape_problems(execution_shape, execution, "pipelineExecution", unknown_members=True)
    if problems:
        return "400 Bad Request", {"error": "not what AWS would answer: " + "; ".join(problems)}
    with LOCK:
        STATE["pipeline_executions"].setdefault(execution["pipelineName"], {})[
            execution["pipelineExecutionId"]
        ] = execution
    return "200 OK", {}


_MOTO_GET_PIPELINE_EXECUTION = CodePipelineResponse.get_pipeline_execution


def get_pipeline_execution(self):
    params = json.loads(self.body or "{}")
    validate_request("codepipeline", "GetPipelineExecution", params)
    name, execution_id = params["pipelineName"], params["pipelineExecutionId"]
    with LOCK:
        seeded = STATE["pipeline_executions"].get(name)
        execution = (seeded or {}).get(execution_id)
    if execution is not None:
        return json.dumps({"pipelineExecution": execution}, default=str)
    if seeded is not None and name not in self.codepipeline_backend.pipelines:
        raise JsonRESTError(
            "PipelineExecutionNotFoundException",
            f"Account '{self.current_account}' does not have an execution with id '{execution_id}' for "
            f"pipeline '{name}'",
        )
    # moto's own executions, and its PipelineNotFoundException / PipelineExecutionNotFoundException.
    return _MOTO_GET_PIPELINE_EXECUTION(self)


# --- CloudWatch ----------------------------------------------------------------------------------

_MOTO_LIST_TAGS_FOR_RESOURCE = CloudWatchResponse.list_tags_for_resource


def cloudwatch_list_tags_for_resource(self):
    """As AWS answers: InvalidParameterValue for a ResourceARN that is no ARN (1 to 1024 characters),
    ResourceNotFound (404) for one that names no alarm or Contributor Insights rule of this account
    and region; moto answers an empty list for both."""
    arn = self._get_param("ResourceARN") or ""
    if not (1 <= len(arn) <= 1024) or not arn.startswith("arn:") or arn.count(":") < 5:
        raise CloudWatchInvalidParameterValue(f"Invalid resource ARN: {arn!r}")
    backend = self.cloudwatch_backend
    known = {a.alarm_arn for a in backend.alarms.values()} | {r.rule_arn for r in backend.insight_rules.values()}
    if arn not in known:
        raise CloudWatchResourceNotFound("The named resource does not exist.")
    return _MOTO_LIST_TAGS_FOR_RESOURCE(self)


CloudWatchResponse.list_tags_for_resource = cloudwatch_list_tags_for_resource
CodeDeployResponse.put_lifecycle_event_hook_execution_status = put_lifecycle_event_hook_execution_status
CodeDeployResponse.list_deployment_targets = list_deployment_targets
CodeDeployResponse.batch_get_deployment_targets = batch_get_deployment_targets
CodePipelineResponse.list_action_executions = list_action_executions
CodePipelineResponse.get_pipeline_state = get_pipeline_state
CodePipelineResponse.get_pipeline_execution = get_pipeline_execution


# --- control API and fault injection -------------------------------------------------------------


def _operation(environ, body: bytes) -> str:
    """The AWS operation a request is for: X-Amz-Target (JSON protocols), Action (query
    protocols such as SNS and SQS), or the S3 method and path."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    if environ.get("PATH_INFO", "").startswith("/service/") and "/operation/" in environ.get("PATH_INFO", ""):
        return environ["PATH_INFO"].rstrip("/").rsplit("/", 1)[-1]
    if body and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/").strip("/")
    is_object = "/" in path
    return {
        ("PUT", True): "PutObject",
        ("GET", True): "GetObject",
        ("HEAD", True): "HeadObject",
        ("DELETE", True): "DeleteObject",
        ("PUT", False): "CreateBucket",
    }.get((method, is_object), f"{method} /{path}")


def _error_body(environ, code: str, message: str) -> tuple[bytes, str]:
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        return cbor2.dumps({"__type": code, "message": message}), "application/cbor"
    if environ.get("HTTP_X_AMZ_TARGET"):
        return json.dumps({"__type": code, "message": message}).encode(), "application/x-amz-json-1.1"
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        xml = (
            f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        )
        return xml.encode(), "text/xml"
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode(), "application/xml"


# --- Smithy RPC v2 CBOR -> JSON protocol ---------------------------------------------------------


def _cbor_to_json_ready(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, cbor2.CBORTag) and value.tag == 1:
        return value.value
    if isinstance(value, dict):
        return {k: _cbor_to_json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cbor_to_json_ready(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(value).decode()
    return value


def _json_to_cbor_ready(value, key: str = ""):
    if isinstance(value, dict):
        return {k: _json_to_cbor_ready(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_to_cbor_ready(v, key) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
        key.endswith("Timestamp") or key.endswith("Time") or key.endswith("Date") or key in ("Timestamps",)
    ):
        return cbor2.CBORTag(1, float(value))
    return value


def rpc_v2_cbor(app, environ, body: bytes, start_response):
    """Serves a `/service/<Service>/operation/<Operation>` CBOR request through moto's JSON protocol."""
    parts = environ.get("PATH_INFO", "").strip("/").split("/")
    service, operation = parts[1], parts[3]
    payload = _cbor_to_json_ready(cbor2.loads(body)) if body else {}
    data = json.dumps(payload).encode()
    environ = dict(environ)
    environ.update(
        {
            "PATH_INFO": "/",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(data)),
            "HTTP_X_AMZ_TARGET": f"{service}.{operation}",
            "wsgi.input": io.BytesIO(data),
        }
    )
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"] = status
        return lambda chunk: None

    chunks = b"".join(app(environ, capture))
    try:
        answer = json.loads(chunks or b"{}")
    except ValueError:
        answer = {"__type": "InternalFailure", "message": chunks.decode("utf-8", "replace")[:500]}
    if "__type" in answer and "#" not in answer["__type"]:
        answer["__type"] = answer["__type"].split(":")[-1]
    out = cbor2.dumps(_json_to_cbor_ready(answer))
    start_response(
        captured.get("status", "500 Internal Server Error"),
        [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"), ("Content-Length", str(len(out)))],
    )
    return [out]


def _json(start_response, status: str, payload) -> list[bytes]:
    data = json.dumps(payload, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class Extension:
    def __init__(self, moto_app):
        self.moto_app = moto_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if path.startswith("/_pipewarden/"):
            return self.control(path, environ, body, start_response)
        if path == "/moto-api/reset":
            reset_state()
            return self.moto_app(environ, start_response)
        operation = _operation(environ, body)
        with LOCK:
            STATE["calls"][operation] += 1
            fault = next((f for f in STATE["faults"] if f["operation"] == operation and f["count"] > 0), None)
            if fault:
                fault["count"] -= 1
        if fault:
            if fault.get("delayMs"):
                time.sleep(fault["delayMs"] / 1000)
            if fault.get("drop"):
                # Close the connection without an answer: the client sees it reset.
                sock = environ.get("werkzeug.socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                raise ConnectionAbortedError("fault injection: dropped connection")
            if fault.get("status"):
                data, content_type = _error_body(environ, fault.get("code", "InternalFailure"), "injected fault")
                start_response(
                    f"{fault['status']} Injected",
                    [("Content-Type", content_type), ("Content-Length", str(len(data)))],
                )
                return [data]
        if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
            return rpc_v2_cbor(self.moto_app, environ, body, start_response)
        return self.moto_app(environ, start_response)

    def control(self, path, environ, body, start_response):
        method = environ.get("REQUEST_METHOD")
        payload = json.loads(body or b"{}") if method == "POST" else None
        if path == "/_pipewarden/pipeline-executions" and method == "POST":
            # Takes the lock itself, after reading the service model.
            return _json(start_response, *seed_pipeline_execution(payload))
        with LOCK:
            if path == "/_pipewarden/hook-statuses" and method == "GET":
                return _json(start_response, "200 OK", STATE["hook_statuses"])
            if path == "/_pipewarden/calls" and method == "GET":
                return _json(start_response, "200 OK", dict(STATE["calls"]))
            if path == "/_pipewarden/deployment-targets" and method == "POST":
                STATE["deployment_targets"][payload["deploymentId"]] = payload["targets"]
                return _json(start_response, "200 OK", {})
            if path == "/_pipewarden/action-executions" and method == "POST":
                STATE["action_executions"][payload["pipelineName"]] = payload["actionExecutionDetails"]
                return _json(start_response, "200 OK", {})
            if path == "/_pipewarden/pipeline-state" and method == "POST":
                STATE["pipeline_states"][payload["pipelineName"]] = payload
                return _json(start_response, "200 OK", {})
            if path == "/_pipewarden/deployments" and method == "POST":
                return _json(start_response, "200 OK", register_deployment(payload))
            if path == "/_pipewarden/faults/clear" and method == "POST":
                STATE["faults"].clear()
                return _json(start_response, "200 OK", {})
            if path == "/_pipewarden/faults" and method == "POST":
                fault = {"count": 1, **payload}
                STATE["faults"].append(fault)
                return _json(start_response, "200 OK", {})
        return _json(start_response, "404 Not Found", {"error": f"no control endpoint {method} {path}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-stdin-watch", action="store_true")
    args = parser.parse_args()

    app = Extension(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"PORT {server.server_port}", flush=True)
    if not args.no_stdin_watch:

        def exit_when_parent_goes():
            sys.stdin.read()
            os._exit(0)

        threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
