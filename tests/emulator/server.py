#!/usr/bin/env python3
"""moto's server, plus Pipewarden's extension for what moto 5.2 lacks.

moto answers HTTP 500 with an HTML body for these operations; this module adds them:
  CodeDeploy   PutLifecycleEventHookExecutionStatus, ListDeploymentTargets, BatchGetDeploymentTargets
  CodePipeline ListActionExecutions, GetPipelineState
and replaces moto's CodePipeline GetPipelineExecution (which knows only executions moto started
itself, with ids of its own and no artifact revisions) with one that answers from the executions
a test seeded, then from moto's; and moto's CodeDeploy ListDeployments (which answers an empty list
for an unknown application or group and for a status that does not exist, and never pages) with one
that answers as AWS does.

The operations it adds answer as AWS documents, with its error codes (JSON protocol `__type`,
HTTP 400), and every answer they build is checked against the model's output shape (an answer AWS
would never give is an HTTP 500 EmulatorOutputInvalid, the emulator's fault):
  PutLifecycleEventHookExecutionStatus  no deploymentId: DeploymentIdRequiredException; no hook id:
      InvalidLifecycleEventHookExecutionIdException; a status other than Succeeded or Failed:
      InvalidLifecycleEventHookExecutionStatusException; an unknown deployment:
      DeploymentDoesNotExistException; an EC2/on-premises (Server) deployment:
      UnsupportedActionForDeploymentTypeException; a hook execution CodeDeploy did not issue for
      that deployment (see /_pipewarden/hooks): InvalidLifecycleEventHookExecutionIdException; a
      hook already reported: LifecycleEventAlreadyCompletedException. A hook reported Failed fails
      its deployment (GetDeployment's status becomes Failed), as CodeDeploy's does.
  BatchGetDeploymentTargets  no deploymentId: DeploymentIdRequiredException; no targetIds:
      DeploymentTargetIdRequiredException; more than 25: DeploymentTargetListSizeExceededException;
      an id that is not the deployment's: DeploymentTargetDoesNotExistException.
  ListDeploymentTargets  DeploymentIdRequiredException, DeploymentDoesNotExistException; pages of
      100 target ids (the request cannot set a size; see /_pipewarden/page-sizes) with nextToken;
      a token it did not issue: InvalidNextTokenException; targetFilters TargetStatus.
      Both answer with the targets a test seeded or, for a Lambda or ECS deployment CodeDeploy
      issued hooks for, its one target, whose lifecycle events say which hook is in progress (the
      latest issued and not yet reported) as CodeDeploy's do.
  ListDeployments  includeOnlyStatuses outside DeploymentStatus: InvalidDeploymentStatusException;
      otherwise validated against the model (ValidationException); applicationName without
      deploymentGroupName: DeploymentGroupNameRequiredException, the other way round:
      ApplicationNameRequiredException; an unknown application: ApplicationDoesNotExistException;
      an unknown group of it: DeploymentGroupDoesNotExistException; createTimeRange start after
      end: InvalidTimeRangeException. Filters by group, statuses, createTimeRange (epoch seconds,
      either end open) and externalId; pages of 100 ids (AWS documents no size; see
      /_pipewarden/page-sizes) with nextToken, InvalidNextTokenException; in creation order (AWS
      documents none).
  ListActionExecutions  validated against the model (ValidationException); an unknown pipeline
      (neither moto's nor seeded): PipelineNotFoundException; maxResults (default 100) and
      nextToken, InvalidNextTokenException.
EventBridge Scheduler CreateSchedule is validated as AWS does (see scheduler_create_schedule): the
model's constraints, at() expressions, a Lambda target's JSON Input, ResourceNotFoundException (404)
for a group that does not exist, ConflictException (409) for a name that exists.
GetPipelineExecution's request is validated against the botocore service model that ships with
moto, as AWS validates it: a missing required member, or a value outside its length, pattern or
enum, is a ValidationException (HTTP 400); an unknown pipeline is a PipelineNotFoundException and
an unknown execution of a known pipeline a PipelineExecutionNotFoundException (both HTTP 400).
CloudWatch ListTagsForResource answers as AWS does where moto answers an empty list: a ResourceARN
that is no ARN is InvalidParameterValue (400), one naming no alarm or Contributor Insights rule of
the account and region is ResourceNotFound (404). CloudWatch DescribeAlarms pages as AWS does
(moto ignores MaxRecords and NextToken): MaxRecords 1 to 100, default 50, NextToken,
InvalidNextToken.
The control API under /_pipewarden/, for tests and the local run:
  GET  /_pipewarden/hook-statuses        every accepted PutLifecycleEventHookExecutionStatus, in order
  POST /_pipewarden/deployments          {"deploymentId", "applicationName", "computePlatform",
                                         "deploymentGroupName" (default <application>-group),
                                         "status" (a DeploymentStatus; default Created),
                                         "createTime" (ISO 8601 or epoch seconds; default now),
                                         "creator" (a DeploymentCreator; default user); posted
                                         again for a known id, changes its status (and creator),
                                         "hooks": [{"lifecycleEventHookExecutionId",
                                         "lifecycleEvent"}]}: a deployment under that id (moto makes
                                         up its own), and the hook executions CodeDeploy issued for it
  POST /_pipewarden/hooks                {"deploymentId", "lifecycleEventHookExecutionId",
                                         "lifecycleEvent"}: one more issued hook execution. The
                                         deployment must exist (404) and be Lambda or ECS, and the
                                         event one of that platform's hooks (default
                                         AfterAllowTraffic) (400)
  POST /_pipewarden/deployment-targets   {"deploymentId", "targets": [DeploymentTarget, ...]} (AWS
                                         shape, checked against the model: 400 naming the member)
  POST /_pipewarden/action-executions    {"pipelineName", "actionExecutionDetails": [...]} (AWS
                                         shape, checked against the model: 400 naming the member)
  POST /_pipewarden/pipeline-state       GetPipelineState output for {"pipelineName", ...} (AWS shape)
  POST /_pipewarden/pipeline-executions  {"pipelineExecution": PipelineExecution} (AWS shape, with
                                         pipelineName and pipelineExecutionId): what
                                         GetPipelineExecution answers for it. Checked against the
                                         model's output shape (400 naming the member at fault);
                                         timestamps may be ISO 8601 and are sent as AWS sends them
                                         (epoch seconds)
  POST /_pipewarden/page-sizes           {"operation", "size"}: the page size of ListDeploymentTargets,
                                         ListDeployments, ListActionExecutions or DescribeAlarms
                                         when the request sets none
  POST /_pipewarden/faults               {"operation", "status", "code", "count", "delayMs", "drop",
                                         "dropAfter"}: the next `count` calls of that operation fail
                                         that way. "drop": the connection closes before the service
                                         sees the request; "dropAfter": the service handles it (it
                                         takes effect), then the connection closes without the answer
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
import base64
import datetime
import io
import json
import math
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
from moto.cloudwatch.exceptions import CloudWatchException
from moto.cloudwatch.exceptions import InvalidParameterValue as CloudWatchInvalidParameterValue
from moto.cloudwatch.exceptions import ResourceNotFound as CloudWatchResourceNotFound
from moto.cloudwatch.models import CloudWatchBackend
from moto.cloudwatch.models import Statistics as CloudWatchStatistics
from moto.cloudwatch.responses import CloudWatchResponse
from moto.codedeploy.responses import CodeDeployResponse
from moto.codepipeline.responses import CodePipelineResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sns.exceptions import SNSException, SNSInvalidParameter
from moto.scheduler.responses import EventBridgeSchedulerResponse
from moto.sns.responses import SNSResponse
from werkzeug.serving import make_server

LOCK = threading.Lock()
STATE: dict = {}


def reset_state() -> None:
    with LOCK:
        STATE.clear()
        STATE.update(
            hook_statuses=[],
            hook_executions={},
            page_sizes={},
            deployment_targets={},
            action_executions={},
            pipeline_states={},
            pipeline_executions={},
            faults=[],
            calls=Counter(),
        )


reset_state()

# What a validation function may report (the model's enum has more; AWS refuses the rest).
REPORTABLE_HOOK_STATUSES = ("Succeeded", "Failed")
# The lifecycle events CodeDeploy runs hook functions for, by compute platform (PutLifecycleEvent-
# HookExecutionStatus's documentation). EC2/on-premises ("Server") runs appspec scripts instead.
HOOK_EVENTS = {
    "Lambda": ("BeforeAllowTraffic", "AfterAllowTraffic"),
    "ECS": ("BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic"),
}
# A Lambda or ECS deployment target's lifecycle events, in the order CodeDeploy runs them
# (BatchGetDeploymentTargets); the hook events above among CodeDeploy's own steps.
TARGET_EVENTS = {
    "Lambda": ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"),
    "ECS": (
        "BeforeInstall",
        "Install",
        "AfterInstall",
        "AllowTestTraffic",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AllowTraffic",
        "AfterAllowTraffic",
    ),
}
# AWS's page sizes where the request cannot set one (ListDeploymentTargets) or sets none.
DEFAULT_PAGE_SIZES = {
    "ListDeploymentTargets": 100,
    "ListDeployments": 100,
    "ListActionExecutions": 100,
    "DescribeAlarms": 50,
    # Data points a page, over all queries (GetMetricData's MaxDatapoints default).
    "GetMetricData": 100800,
}


def _body(response) -> dict:
    try:
        return json.loads(response.body or "{}")
    except ValueError:
        return {}


# --- CodeDeploy ------------------------------------------------------------------------------


def _platform(deployment) -> str:
    # CreateApplication's computePlatform defaults to Server, as in AWS.
    return deployment.application.compute_platform or "Server"


def put_lifecycle_event_hook_execution_status(self):
    """As AWS answers it: every error below is one PutLifecycleEventHookExecutionStatus documents
    (HTTP 400)."""
    body = _body(self)
    deployment_id = body.get("deploymentId")
    hook_id = body.get("lifecycleEventHookExecutionId")
    status = body.get("status")
    if not deployment_id:
        raise JsonRESTError("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
    if not hook_id:
        raise JsonRESTError(
            "InvalidLifecycleEventHookExecutionIdException", "A lifecycle event hook execution ID must be specified."
        )
    if status not in REPORTABLE_HOOK_STATUSES:
        raise JsonRESTError(
            "InvalidLifecycleEventHookExecutionStatusException",
            f"The status {status!r} is not valid: a validation function reports Succeeded or Failed.",
        )
    # Raises DeploymentDoesNotExistException as AWS does for an unknown deployment.
    deployment = self.codedeploy_backend.get_deployment(deployment_id)
    platform = _platform(deployment)
    if platform not in HOOK_EVENTS:
        raise JsonRESTError(
            "UnsupportedActionForDeploymentTypeException",
            f"The deployment {deployment_id} uses the {platform} compute platform, which has no lifecycle event "
            "hook executions to report on.",
        )
    with LOCK:
        issued = STATE["hook_executions"].get(hook_id)
        if issued is None or issued["deploymentId"] != deployment_id:
            raise JsonRESTError(
                "InvalidLifecycleEventHookExecutionIdException",
                f"The lifecycle event hook execution {hook_id} does not belong to the deployment {deployment_id}.",
            )
        done = [r for r in STATE["hook_statuses"] if r["lifecycleEventHookExecutionId"] == hook_id]
        if done:
            raise JsonRESTError(
                "LifecycleEventAlreadyCompletedException",
                f"The lifecycle event {hook_id} has already completed with status {done[0]['status']}",
            )
        STATE["hook_statuses"].append(
            {
                "deploymentId": deployment_id,
                "lifecycleEventHookExecutionId": hook_id,
                "lifecycleEvent": issued["lifecycleEvent"],
                "status": status,
                "time": time.time(),
            }
        )
        if status == "Failed":
            deployment.status = "Failed"
    return _checked_output("codedeploy", "PutLifecycleEventHookExecutionStatus", {"lifecycleEventHookExecutionId": hook_id})


def _codedeploy_deployment(self, body: dict):
    deployment_id = body.get("deploymentId")
    if not deployment_id:
        raise JsonRESTError("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
    return deployment_id, self.codedeploy_backend.get_deployment(deployment_id)


def list_deployment_targets(self):
    body = _body(self)
    deployment_id, _ = _codedeploy_deployment(self, body)
    filters = body.get("targetFilters") or {}
    for name in filters:
        if name not in ("TargetStatus", "ServerInstanceLabel"):
            raise JsonRESTError("InvalidTargetFilterNameException", f"The target filter name {name} is invalid.")
    targets = _deployment_targets(self.codedeploy_backend, deployment_id)
    wanted_status = filters.get("TargetStatus")
    if wanted_status:
        targets = [t for t in targets if _target(t).get("status") in wanted_status]
    ids = [_target_id(t) for t in targets]
    page, token = _page("ListDeploymentTargets", deployment_id, ids, body.get("nextToken"), None, _invalid_next_token)
    out = {"targetIds": page}
    if token:
        out["nextToken"] = token
    return _checked_output("codedeploy", "ListDeploymentTargets", out)


def batch_get_deployment_targets(self):
    body = _body(self)
    deployment_id = body.get("deploymentId")
    if not deployment_id:
        raise JsonRESTError("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
    wanted = body.get("targetIds")
    if not wanted:
        raise JsonRESTError("DeploymentTargetIdRequiredException", "A deployment target ID must be specified.")
    if len(wanted) > 25:
        raise JsonRESTError(
            "DeploymentTargetListSizeExceededException",
            f"{len(wanted)} target IDs were specified; the maximum is 25.",
        )
    self.codedeploy_backend.get_deployment(deployment_id)
    targets = {_target_id(t): t for t in _deployment_targets(self.codedeploy_backend, deployment_id)}
    missing = [w for w in wanted if w not in targets]
    if missing:
        raise JsonRESTError(
            "DeploymentTargetDoesNotExistException",
            f"The target {missing[0]} does not belong to the deployment {deployment_id}.",
        )
    found = [targets[w] for w in dict.fromkeys(wanted)]
    return _checked_output("codedeploy", "BatchGetDeploymentTargets", {"deploymentTargets": found})


def list_deployments(self):
    params = json.loads(self.body or "{}")
    statuses = params.get("includeOnlyStatuses")
    known = _service_model("codedeploy").shape_for("DeploymentStatus").enum
    if isinstance(statuses, list):
        for status in statuses:
            if status not in known:
                raise JsonRESTError("InvalidDeploymentStatusException", f"The deployment status {status!r} is not valid.")
    validate_request("codedeploy", "ListDeployments", params)
    application, group = params.get("applicationName"), params.get("deploymentGroupName")
    if application and not group:
        raise JsonRESTError(
            "DeploymentGroupNameRequiredException",
            "If applicationName is specified, then deploymentGroupName must be specified.",
        )
    if group and not application:
        raise JsonRESTError(
            "ApplicationNameRequiredException", "If deploymentGroupName is specified, applicationName must be specified."
        )
    backend = self.codedeploy_backend
    if application and application not in backend.applications:
        raise JsonRESTError("ApplicationDoesNotExistException", f"No application found for name: {application}")
    if group and group not in backend.deployment_groups.get(application, {}):
        raise JsonRESTError(
            "DeploymentGroupDoesNotExistException", f"No deployment group found for name: {group} of {application}"
        )
    time_range = params.get("createTimeRange") or {}
    start, end = time_range.get("start"), time_range.get("end")
    if start is not None and end is not None and start > end:
        raise JsonRESTError("InvalidTimeRangeException", "The start time must be earlier than the end time.")
    external_id = params.get("externalId")

    def listed(deployment) -> bool:
        created = deployment.create_time.replace(tzinfo=datetime.timezone.utc).timestamp()
        return (
            (not application or deployment.application_name == application)
            and (not group or deployment.deployment_group_name == group)
            and (not statuses or deployment.status in statuses)
            and (start is None or created >= start)
            and (end is None or created <= end)
            and (not external_id or deployment.external_id == external_id)
        )

    with LOCK:
        ids = [d.deployment_id for d in sorted(backend.deployments.values(), key=lambda d: d.create_time) if listed(d)]
    key = json.dumps({k: v for k, v in params.items() if k != "nextToken"}, sort_keys=True, default=str)
    page, token = _page("ListDeployments", key, ids, params.get("nextToken"), None, _invalid_next_token)
    out = {"deployments": page}
    if token:
        out["nextToken"] = token
    return _checked_output("codedeploy", "ListDeployments", out)


def _deployment_targets(backend, deployment_id: str) -> list:
    """The targets a test seeded; else, for a Lambda or ECS deployment CodeDeploy issued hooks for,
    its one target, whose lifecycle events say which hook is running as CodeDeploy's do: the
    latest issued hook not yet reported is InProgress, the events before it Succeeded (or as
    reported), the rest Pending."""
    with LOCK:
        seeded = STATE["deployment_targets"].get(deployment_id)
        issued = [(h, v["lifecycleEvent"]) for h, v in STATE["hook_executions"].items() if v["deploymentId"] == deployment_id]
        reported = {r["lifecycleEventHookExecutionId"]: r["status"] for r in STATE["hook_statuses"]}
    if seeded is not None or not issued:
        return seeded or []
    deployment = backend.deployments.get(deployment_id)
    platform = _platform(deployment) if deployment else "Server"
    names = TARGET_EVENTS.get(platform)
    if names is None:
        return []
    statuses = {}
    for hook_id, event in issued:
        statuses[event] = reported.get(hook_id, "InProgress")
    running = [e for e, st in statuses.items() if st == "InProgress"]
    # What ran before the current (or last) hook event is done; what comes after is pending.
    last = names.index(running[-1] if running else list(statuses)[-1])
    events = []
    for i, name in enumerate(names):
        status = statuses.get(name) if name in statuses else ("Succeeded" if i < last else "Pending")
        events.append({"lifecycleEventName": name, "status": status})
    now = time.time()
    for event in events:
        if event["status"] != "Pending":
            event["startTime"] = now
        if event["status"] in ("Succeeded", "Failed"):
            event["endTime"] = now
    application = deployment.application.application_name if deployment else "app"
    if platform == "Lambda":
        target = {
            "deploymentId": deployment_id,
            "targetId": application,  # the API reference: a Lambda target id is the function name
            "targetArn": f"arn:aws:lambda:us-east-1:{DEFAULT_ACCOUNT_ID}:function:{application}",
            "status": "InProgress" if running else "Succeeded",
            "lastUpdatedAt": now,
            "lifecycleEvents": events,
        }
        return [{"deploymentTargetType": "LambdaTarget", "lambdaTarget": target}]
    target = {
        "deploymentId": deployment_id,
        "targetId": f"{application}-cluster:{application}-service",
        "targetArn": f"arn:aws:ecs:us-east-1:{DEFAULT_ACCOUNT_ID}:service/{application}-cluster/{application}-service",
        "status": "InProgress" if running else "Succeeded",
        "lastUpdatedAt": now,
        "lifecycleEvents": events,
    }
    return [{"deploymentTargetType": "ECSTarget", "ecsTarget": target}]


def _target(target: dict) -> dict:
    for key in ("instanceTarget", "lambdaTarget", "ecsTarget", "cloudFormationTarget"):
        if key in target:
            return target[key]
    return {}


def _target_id(target: dict) -> str:
    for key in ("instanceTarget", "lambdaTarget", "ecsTarget", "cloudFormationTarget"):
        if key in target:
            return target[key].get("targetId", "")
    return ""


def register_deployment(payload: dict) -> dict:
    """Creates a deployment under the id an event names, so a sample or replayed hook event finds it."""
    backend = _codedeploy_backend(payload)
    wanted = payload["deploymentId"]
    if wanted in backend.deployments:
        # Registering a known id again changes what CodeDeploy says of it (its status, as the
        # deployment ends); the rest stays as created.
        _set_deployment_state(backend.deployments[wanted], payload)
        return {"deploymentId": wanted, "hooks": _register_hooks(backend, wanted, payload.get("hooks") or [])}
    application = payload.get("applicationName", "pipewarden-local")
    group = payload.get("deploymentGroupName") or f"{application}-group"
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
    _set_deployment_state(deployment, payload)
    backend.deployments[wanted] = deployment
    return {"deploymentId": wanted, "hooks": _register_hooks(backend, wanted, payload.get("hooks") or [])}


def _set_deployment_state(deployment, payload: dict) -> None:
    """The status, creation time and creator a registered deployment has (moto's are Created, now
    and user)."""
    creator = payload.get("creator")
    if creator is not None:
        creators = _service_model("codedeploy").shape_for("DeploymentCreator").enum
        if creator not in creators:
            raise ControlError("400 Bad Request", f"creator {creator!r} is not one of {', '.join(creators)}")
        deployment.creator = creator
    status = payload.get("status")
    if status is not None:
        statuses = _service_model("codedeploy").shape_for("DeploymentStatus").enum
        if status not in statuses:
            raise ControlError("400 Bad Request", f"status {status!r} is not one of {', '.join(statuses)}")
        deployment.status = status
    created = payload.get("createTime")
    if created is not None:
        try:
            if isinstance(created, str):
                created = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
            else:
                created = datetime.datetime.fromtimestamp(created, datetime.timezone.utc)
        except (TypeError, ValueError, OverflowError):
            raise ControlError("400 Bad Request", f"createTime {created!r} is neither ISO 8601 nor epoch seconds") from None
        if created.tzinfo is not None:
            created = created.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        # moto keeps naive UTC times.
        deployment.create_time = created


class ControlError(Exception):
    """A control request the emulator refuses: (HTTP status, message)."""


def _codedeploy_backend(payload: dict):
    from moto.codedeploy.models import codedeploy_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    return codedeploy_backends[payload.get("accountId", DEFAULT_ACCOUNT_ID)][payload.get("region", "us-east-1")]


def _register_hooks(backend, deployment_id: str, hooks: list) -> list:
    """Records the lifecycle event hook executions CodeDeploy issued for a deployment (what it puts
    in the events it sends hook functions), so PutLifecycleEventHookExecutionStatus knows them."""
    deployment = backend.deployments.get(deployment_id)
    if deployment is None:
        raise ControlError("404 Not Found", f"no deployment {deployment_id}: register it first")
    platform = _platform(deployment)
    events = HOOK_EVENTS.get(platform)
    if hooks and events is None:
        raise ControlError(
            "400 Bad Request", f"CodeDeploy issues no hook executions for a {platform} deployment ({deployment_id})"
        )
    out = []
    for hook in hooks:
        hook_id = hook.get("lifecycleEventHookExecutionId")
        event = hook.get("lifecycleEvent", "AfterAllowTraffic")
        if not hook_id:
            raise ControlError("400 Bad Request", "a hook needs lifecycleEventHookExecutionId")
        if event not in events:
            raise ControlError(
                "400 Bad Request", f"a {platform} deployment has no {event} hook; it has {', '.join(events)}"
            )
        with LOCK:
            known = STATE["hook_executions"].get(hook_id)
            if known and known["deploymentId"] != deployment_id:
                raise ControlError("400 Bad Request", f"hook {hook_id} was issued for {known['deploymentId']}")
            STATE["hook_executions"][hook_id] = {"deploymentId": deployment_id, "lifecycleEvent": event}
        out.append({"lifecycleEventHookExecutionId": hook_id, "lifecycleEvent": event})
    return out


def register_hook(payload: dict) -> dict:
    backend = _codedeploy_backend(payload)
    return {"hooks": _register_hooks(backend, payload.get("deploymentId", ""), [payload])}


# --- CodePipeline ----------------------------------------------------------------------------


def _pipeline_known(self, name: str) -> bool:
    """A pipeline moto has, or one a test seeded answers for (it stands for a pipeline in AWS)."""
    with LOCK:
        seeded = any(name in STATE[k] for k in ("action_executions", "pipeline_states", "pipeline_executions"))
    return seeded or name in self.codepipeline_backend.pipelines


def list_action_executions(self):
    params = json.loads(self.body or "{}")
    validate_request("codepipeline", "ListActionExecutions", params)
    name = params["pipelineName"]
    if not _pipeline_known(self, name):
        raise JsonRESTError(
            "PipelineNotFoundException", f"Account '{self.current_account}' does not have a pipeline with name '{name}'"
        )
    execution_filter = (params.get("filter") or {}).get("pipelineExecutionId")
    with LOCK:
        details = STATE["action_executions"].get(name, [])
    if execution_filter:
        details = [d for d in details if d.get("pipelineExecutionId") == execution_filter]
    key = f"{name}/{execution_filter or ''}"
    page, token = _page(
        "ListActionExecutions", key, details, params.get("nextToken"), params.get("maxResults"), _invalid_next_token
    )
    out = {"actionExecutionDetails": page}
    if token:
        out["nextToken"] = token
    return _checked_output("codepipeline", "ListActionExecutions", out)


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
        if "min" in meta and len(value) < meta["min"] or "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length between "
                f"{meta.get('min', 0)} and {meta.get('max', 'unbounded')}"
            )
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
        if "max" in meta and value > meta["max"]:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value less "
                f"than or equal to {meta['max']}"
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


# --- pagination and output checks ----------------------------------------------------------------


def _page(operation: str, key: str, items: list, token, max_results, invalid_token):
    """One page of `items` and the token for the next (None on the last page). `max_results` is the
    request's limit, else the size a test set on /_pipewarden/page-sizes, else AWS's. A token is
    opaque to clients and names the listing it continues: any other token is `invalid_token()`."""
    with LOCK:
        size = max_results or STATE["page_sizes"].get(operation) or DEFAULT_PAGE_SIZES[operation]
    start = 0
    if token is not None:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            if decoded["op"] != operation or decoded["key"] != key or not 0 < decoded["offset"] <= len(items):
                raise ValueError(decoded)
            start = decoded["offset"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError):
            raise invalid_token(f"The next token {token!r} is not valid.") from None
    end = start + size
    if end >= len(items):
        return items[start:], None
    raw = json.dumps({"op": operation, "key": key, "offset": end}).encode()
    return items[start:end], base64.urlsafe_b64encode(raw).decode()


def _invalid_next_token(message: str) -> JsonRESTError:
    return JsonRESTError("InvalidNextTokenException", message)


def _checked_output(service: str, operation: str, out: dict) -> str:
    """The answer as JSON, after checking it is what the model says AWS answers; an answer that is
    not is the emulator's fault, said as such (HTTP 500) rather than handed to the code under test."""
    shape = _service_model(service).operation_model(operation).output_shape
    problems = _shape_problems(shape, out, "", unknown_members=True)
    if problems:
        error = JsonRESTError("EmulatorOutputInvalid", f"{operation}: " + "; ".join(problems))
        error.code = 500
        raise error
    return json.dumps(out, default=str)


def seed_checked(service: str, operation: str, member: str, items) -> tuple[str, object]:
    """Seeded answer items (a list of the output's `member`), timestamps made epoch seconds, checked
    against the model: ("200 OK", items) or ("400 Bad Request", error)."""
    shape = _service_model(service).operation_model(operation).output_shape.members[member]
    if not isinstance(items, list):
        return "400 Bad Request", {"error": f"{member} must be a list"}
    try:
        items = _epoch_timestamps(shape, items)
    except ValueError as e:
        return "400 Bad Request", {"error": f"a timestamp is neither ISO 8601 nor epoch seconds: {e}"}
    problems = _shape_problems(shape, items, member, unknown_members=True)
    if problems:
        return "400 Bad Request", {"error": "not what AWS would answer: " + "; ".join(problems)}
    return "200 OK", items


# --- CloudWatch ----------------------------------------------------------------------------------

_MOTO_DESCRIBE_ALARMS = CloudWatchResponse.describe_alarms


def cloudwatch_describe_alarms(self):
    """moto's DescribeAlarms, paged as AWS pages it (MaxRecords, 1 to 100, default 50; NextToken;
    InvalidNextToken for a token it did not issue). Metric alarms come first, then composite ones;
    a page may hold both."""
    params = self._get_params()
    max_records = self._get_param("MaxRecords")
    if max_records is not None:
        max_records = int(max_records)
        if not 1 <= max_records <= 100:
            raise CloudWatchException(
                "InvalidParameterValue", f"The value {max_records} for parameter MaxRecords is not between 1 and 100."
            )
    result = _MOTO_DESCRIBE_ALARMS(self).result
    metric, composite = list(result.get("MetricAlarms", [])), list(result.get("CompositeAlarms", []))
    key = json.dumps({k: v for k, v in params.items() if k not in ("MaxRecords", "NextToken")}, sort_keys=True, default=str)
    page, token = _page(
        "DescribeAlarms",
        key,
        [("m", a) for a in metric] + [("c", a) for a in composite],
        self._get_param("NextToken"),
        max_records,
        lambda message: CloudWatchException("InvalidNextToken", message),
    )
    out = {"MetricAlarms": [a for kind, a in page if kind == "m"], "CompositeAlarms": [a for kind, a in page if kind == "c"]}
    if token:
        out["NextToken"] = token
    return ActionResult(out)


_MOTO_GET_METRIC_DATA = CloudWatchResponse.get_metric_data
_MOTO_BACKEND_GET_METRIC_DATA = CloudWatchBackend.get_metric_data
_METRIC_QUERY_ID = re.compile(r"[a-z][a-zA-Z0-9_]{0,254}")


def cloudwatch_get_metric_data(self):
    """moto's GetMetricData, refusing what AWS refuses and moto lets through: no query or more than
    500, an Id that does not start with a lowercase letter followed by letters, digits and
    underscores (at most 255), an Id used twice, a MetricStat without Stat, and a Period that is
    neither 1, 5, 10, 20 or 30 (high resolution) nor a multiple of 60."""
    queries = self._get_params().get("MetricDataQueries") or []
    if not 1 <= len(queries) <= 500:
        raise CloudWatchException("ValidationError", f"MetricDataQueries must hold 1 to 500 queries, not {len(queries)}.")
    seen = set()
    for i, query in enumerate(queries, start=1):
        query_id = query.get("Id") or ""
        if not _METRIC_QUERY_ID.fullmatch(query_id):
            raise CloudWatchException(
                "ValidationError",
                f"The value {query_id!r} for field Id (MetricDataQueries.member.{i}) is invalid: it must start with "
                "a lowercase letter and hold only letters, numbers and underscores.",
            )
        if query_id in seen:
            raise CloudWatchException("ValidationError", f"The value {query_id!r} for field Id is used twice.")
        seen.add(query_id)
        stat = query.get("MetricStat")
        if stat is None:
            continue
        if not stat.get("Stat"):
            raise CloudWatchException("ValidationError", f"MetricDataQueries.member.{i}.MetricStat.Stat is required.")
        period = int(stat.get("Period") or 0)
        if not (period in (1, 5, 10, 20, 30) or (period > 0 and period % 60 == 0)):
            raise CloudWatchException(
                "ValidationError",
                f"The parameter MetricDataQueries.member.{i}.MetricStat.Period must be 1, 5, 10, 20, 30 or a multiple of 60.",
            )
    params = self._get_params()
    result = _MOTO_GET_METRIC_DATA(self).result
    # Paged by data points, as AWS pages (MaxDatapoints, default 100,800; NextToken; each page
    # answers every query, PartialData while more follow); moto answers all at once.
    everything = result.get("MetricDataResults", [])
    points = [(r["id"], v, t) for r in everything for v, t in zip(r.get("values") or [], r.get("timestamps") or [])]
    key = json.dumps({k: v for k, v in params.items() if k not in ("MaxDatapoints", "NextToken")}, sort_keys=True, default=str)
    max_points = self._get_param("MaxDatapoints")
    page, token = _page(
        "GetMetricData",
        key,
        points,
        self._get_param("NextToken"),
        int(max_points) if max_points else None,
        lambda message: CloudWatchException("InvalidNextToken", message),
    )
    results = []
    for r in everything:
        mine = [(v, t) for i, v, t in page if i == r["id"]]
        results.append(
            dict(r, values=[v for v, _ in mine], timestamps=[t for _, t in mine], status_code="PartialData" if token else "Complete")
        )
    out = {"MetricDataResults": results, "Messages": []}
    if token:
        out["NextToken"] = token
    return ActionResult(out)


_MOTO_PUT_METRIC_DATA = CloudWatchResponse.put_metric_data


def cloudwatch_put_metric_data(self):
    """moto's PutMetricData, refusing a namespace that starts with "AWS/" as AWS does (those are AWS's
    own services'; a test plays them through /_pipewarden/metrics)."""
    namespace = self._get_param("Namespace") or ""
    if namespace.startswith("AWS/"):
        raise CloudWatchInvalidParameterValue(f"The value {namespace} for parameter Namespace is invalid.")
    return _MOTO_PUT_METRIC_DATA(self)


def seed_metrics(payload: dict) -> None:
    """Metrics as an AWS service publishes them (AWS/Lambda, AWS/ApplicationELB): PutMetricData's
    Namespace and MetricData (Timestamp as epoch seconds or ISO 8601), straight into the backend."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    backend = cloudwatch_backends[payload.get("accountId", DEFAULT_ACCOUNT_ID)][payload.get("region", "us-east-1")]
    data = []
    for datum in payload.get("metricData") or []:
        datum = dict(datum)
        stamp = datum.get("Timestamp")
        if isinstance(stamp, (int, float)):
            stamp = datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)
        elif isinstance(stamp, str):
            stamp = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if stamp is not None and stamp.tzinfo is not None:
            # moto keeps naive UTC times.
            stamp = stamp.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        datum["Timestamp"] = stamp
        data.append(datum)
    backend.put_metric_data(payload["namespace"], data)


def cloudwatch_backend_get_metric_data(self, queries, start_time, end_time, scan_by="TimestampAscending"):
    """moto's, but a metric query reads only its own namespace (moto drops the namespace when the
    query names dimensions, so a metric of the same name and dimensions in another namespace
    would answer it), and StartTime is rounded down to the minute as AWS rounds a start within the
    last 15 days for periods of a minute or more (moto starts its periods at the raw time).
    Queries are answered one by one when none is an expression."""
    periods = [int(q["MetricStat"].get("Period") or 0) for q in queries if "MetricStat" in q]
    if periods and min(periods) >= 60:
        start_time = start_time.replace(second=0, microsecond=0)
    if any("MetricStat" not in q for q in queries):
        return _MOTO_BACKEND_GET_METRIC_DATA(self, queries, start_time, end_time, scan_by)
    results = []
    everything = self.get_all_metrics()
    for query in queries:
        namespace = query["MetricStat"]["Metric"].get("Namespace")
        self.get_all_metrics = lambda ns=namespace: [m for m in everything if m.namespace == ns]
        try:
            results.extend(_MOTO_BACKEND_GET_METRIC_DATA(self, [query], start_time, end_time, scan_by))
        finally:
            del self.get_all_metrics
    return results


_MOTO_STATISTIC = CloudWatchStatistics.get_statistics_for_type
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")


def cloudwatch_statistic(self, stat):
    """moto's statistics, and percentiles (p90, p99.9), which moto answers None for: the
    nearest-rank percentile of the period's values (CloudWatch's own are estimates of the same)."""
    match = _PERCENTILE.fullmatch(stat or "")
    if not match:
        return _MOTO_STATISTIC(self, stat)
    values = sorted(self.metric_single_values_list)
    if not values:
        return None
    rank = max(1, math.ceil(float(match.group(1)) / 100 * len(values)))
    return values[rank - 1]


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
CloudWatchResponse.get_metric_data = cloudwatch_get_metric_data
CloudWatchResponse.put_metric_data = cloudwatch_put_metric_data
CloudWatchBackend.get_metric_data = cloudwatch_backend_get_metric_data
CloudWatchStatistics.get_statistics_for_type = cloudwatch_statistic
CloudWatchResponse.describe_alarms = cloudwatch_describe_alarms
CodeDeployResponse.put_lifecycle_event_hook_execution_status = put_lifecycle_event_hook_execution_status
CodeDeployResponse.list_deployment_targets = list_deployment_targets
CodeDeployResponse.batch_get_deployment_targets = batch_get_deployment_targets
CodeDeployResponse.list_deployments = list_deployments
CodePipelineResponse.list_action_executions = list_action_executions
CodePipelineResponse.get_pipeline_state = get_pipeline_state
CodePipelineResponse.get_pipeline_execution = get_pipeline_execution


# --- SNS -----------------------------------------------------------------------------------------

SNS_MAX_MESSAGE_BYTES = 262144  # 256 KiB, the default MaximumMessageSize of a topic


def _sns_size(message, attributes) -> int:
    """What SNS counts against the limit: the message's UTF-8 bytes and every attribute's name,
    data type and value (moto counts only the message's characters)."""
    size = len((message or "").encode("utf-8"))
    for name, value in (attributes or {}).items():
        raw = value.get("StringValue", value.get("BinaryValue", b""))
        size += len(name.encode()) + len(value.get("DataType", "").encode())
        size += len(raw if isinstance(raw, (bytes, bytearray)) else str(raw).encode("utf-8"))
    return size


_MOTO_SNS_PUBLISH = SNSResponse.publish
_MOTO_SNS_PUBLISH_BATCH = SNSResponse.publish_batch


def sns_publish(self):
    if self._get_param("PhoneNumber") is None:
        size = _sns_size(self._get_param("Message"), self._get_param("MessageAttributes", {}))
        if size > SNS_MAX_MESSAGE_BYTES:
            raise SNSInvalidParameter(
                f"Invalid parameter: Message too long ({size} bytes with its attributes; the limit is "
                f"{SNS_MAX_MESSAGE_BYTES})"
            )
    return _MOTO_SNS_PUBLISH(self)


def sns_publish_batch(self):
    """As AWS: no entries is EmptyBatchRequest; more than 256 KiB in all is BatchRequestTooLong
    (moto accepts both, and fails an over-long entry alone). moto checks the rest
    (TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct)."""
    entries = self._get_param("PublishBatchRequestEntries", [])
    if not entries:
        raise SNSException("EmptyBatchRequest", "The batch request doesn't contain any entries.")
    total = sum(_sns_size(e.get("Message"), e.get("MessageAttributes")) for e in entries)
    if total > SNS_MAX_MESSAGE_BYTES:
        raise SNSException(
            "BatchRequestTooLong",
            f"The length of all the messages put together is more than the limit ({total} > {SNS_MAX_MESSAGE_BYTES} bytes).",
        )
    return _MOTO_SNS_PUBLISH_BATCH(self)


SNSResponse.publish = sns_publish
SNSResponse.publish_batch = sns_publish_batch


class SchedulerError(JsonRESTError):
    def __init__(self, code: str, message: str, status: int):
        super().__init__(code, message)
        self.code = status


_MOTO_CREATE_SCHEDULE = EventBridgeSchedulerResponse.create_schedule
AT_EXPRESSION = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")


def scheduler_create_schedule(self):
    """As AWS: the request validated against the model (ValidationException, 400: a name of more
    than 64 characters or outside [0-9a-zA-Z-_.], no FlexibleTimeWindow, no Target.RoleArn); an
    at() expression that is not at(yyyy-mm-ddThh:mm:ss), or a time in the past: ValidationException;
    a Lambda target's Input that is not JSON: ValidationException; a group that does not exist:
    ResourceNotFoundException (404; moto fails with a KeyError); a name the group has:
    ConflictException (409; moto answers 400)."""
    params = json.loads(self.body or "{}")
    name = urllib.parse.unquote(self.uri.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
    validate_request("scheduler", "CreateSchedule", dict(params, Name=name))
    expression = params["ScheduleExpression"]
    if expression.startswith("at("):
        match = AT_EXPRESSION.fullmatch(expression)
        try:
            at = datetime.datetime.fromisoformat(match.group(1)) if match else None
        except ValueError:
            at = None
        if at is None:
            raise SchedulerError("ValidationException", f"Invalid Schedule Expression {expression}.", 400)
        zone = params.get("ScheduleExpressionTimezone") or "UTC"
        if zone == "UTC" and at < datetime.datetime.utcnow() - datetime.timedelta(minutes=5):
            raise SchedulerError("ValidationException", f"The schedule expression {expression} is in the past.", 400)
    target = params.get("Target") or {}
    if ":lambda:" in target.get("Arn", "") and "Input" in target:
        try:
            json.loads(target["Input"])
        except ValueError:
            raise SchedulerError("ValidationException", "Target Input must be valid JSON for a Lambda target.", 400)
    group = params.get("GroupName") or "default"
    groups = self.scheduler_backend.schedule_groups
    if group not in groups:
        raise SchedulerError("ResourceNotFoundException", f"Schedule group {group} does not exist.", 404)
    if name in groups[group].schedules:
        raise SchedulerError("ConflictException", f"Schedule {name} already exists.", 409)
    return _MOTO_CREATE_SCHEDULE(self)


EventBridgeSchedulerResponse.create_schedule = scheduler_create_schedule


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
    if path.startswith("schedules/") and "/aws4_request" in environ.get("HTTP_AUTHORIZATION", "") and "/scheduler/" in environ.get("HTTP_AUTHORIZATION", ""):
        return {"POST": "CreateSchedule", "GET": "GetSchedule", "PUT": "UpdateSchedule", "DELETE": "DeleteSchedule"}.get(method, method)
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


def _drop_connection(environ):
    """Closes the connection without an answer: the client sees it reset."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise ConnectionAbortedError("fault injection: dropped connection")


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
            if fault.get("dropAfter"):
                # The service handles the request (it takes effect), then the answer is lost.
                b"".join(self.serve(environ, body, lambda status, headers, exc_info=None: (lambda chunk: None)))
                _drop_connection(environ)
            if fault.get("drop"):
                _drop_connection(environ)
            if fault.get("status"):
                data, content_type = _error_body(environ, fault.get("code", "InternalFailure"), "injected fault")
                start_response(
                    f"{fault['status']} Injected",
                    [("Content-Type", content_type), ("Content-Length", str(len(data)))],
                )
                return [data]
        return self.serve(environ, body, start_response)

    def serve(self, environ, body, start_response):
        if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
            return rpc_v2_cbor(self.moto_app, environ, body, start_response)
        return self.moto_app(environ, start_response)

    def control(self, path, environ, body, start_response):
        method = environ.get("REQUEST_METHOD")
        payload = json.loads(body or b"{}") if method == "POST" else None
        if path == "/_pipewarden/pipeline-executions" and method == "POST":
            # Takes the lock itself, after reading the service model.
            return _json(start_response, *seed_pipeline_execution(payload))
        try:
            if path == "/_pipewarden/deployments" and method == "POST":
                return _json(start_response, "200 OK", register_deployment(payload))
            if path == "/_pipewarden/hooks" and method == "POST":
                return _json(start_response, "200 OK", register_hook(payload))
            if path == "/_pipewarden/metrics" and method == "POST":
                seed_metrics(payload)
                return _json(start_response, "200 OK", {})
        except ControlError as e:
            return _json(start_response, e.args[0], {"error": e.args[1]})
        if path == "/_pipewarden/deployment-targets" and method == "POST":
            status, targets = seed_checked("codedeploy", "BatchGetDeploymentTargets", "deploymentTargets", payload.get("targets"))
            if status.startswith("200"):
                with LOCK:
                    STATE["deployment_targets"][payload["deploymentId"]] = targets
                return _json(start_response, status, {})
            return _json(start_response, status, targets)
        if path == "/_pipewarden/action-executions" and method == "POST":
            status, details = seed_checked(
                "codepipeline", "ListActionExecutions", "actionExecutionDetails", payload.get("actionExecutionDetails")
            )
            if status.startswith("200"):
                with LOCK:
                    STATE["action_executions"][payload["pipelineName"]] = details
                return _json(start_response, status, {})
            return _json(start_response, status, details)
        with LOCK:
            if path == "/_pipewarden/hook-statuses" and method == "GET":
                return _json(start_response, "200 OK", STATE["hook_statuses"])
            if path == "/_pipewarden/calls" and method == "GET":
                return _json(start_response, "200 OK", dict(STATE["calls"]))
            if path == "/_pipewarden/page-sizes" and method == "POST":
                if payload.get("operation") not in DEFAULT_PAGE_SIZES or not isinstance(payload.get("size"), int) or payload["size"] < 1:
                    return _json(
                        start_response,
                        "400 Bad Request",
                        {"error": f"operation is one of {sorted(DEFAULT_PAGE_SIZES)} and size a positive integer"},
                    )
                STATE["page_sizes"][payload["operation"]] = payload["size"]
                return _json(start_response, "200 OK", {})
            if path == "/_pipewarden/pipeline-state" and method == "POST":
                STATE["pipeline_states"][payload["pipelineName"]] = payload
                return _json(start_response, "200 OK", {})
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
