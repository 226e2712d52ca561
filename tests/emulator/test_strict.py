#!/usr/bin/env python3
"""The emulator answers as AWS documents: each operation the extension adds, driven with boto3
(which builds and parses requests from the same botocore service models), for the happy path and
each documented error, with pages of one item; the drop-after fault; and the answers of moto's own
SNS, S3 and CloudWatch that Pipewarden's functions rely on (so a moto upgrade that changes them is
caught).

Usage: test_strict.py ENDPOINT   (an emulator started with tests/emulator/server.py; it is reset)
Prints one line per failed check and "N passed, M failed"; exits 1 if any failed.
"""

import json
import sys
import traceback
import urllib.error
import urllib.request

import boto3
import botocore.exceptions
from botocore.config import Config

ENDPOINT = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:5000"
ACCOUNT = "123456789012"
REGION = "us-east-1"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def client(service, validate=True, retries=3):
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            parameter_validation=validate,
            retries={"total_max_attempts": retries, "mode": "standard"},
            connect_timeout=5,
            read_timeout=10,
        ),
    )


def control(path, payload=None):
    """(status, body) of a control API call."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{ENDPOINT}/_pipewarden/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ok(path, payload=None):
    status, body = control(path, payload)
    assert 200 <= status < 300, f"{path}: HTTP {status}: {body}"
    return body


def reset():
    urllib.request.urlopen(urllib.request.Request(f"{ENDPOINT}/moto-api/reset", data=b"", method="POST")).read()


def error(call, **kwargs):
    """The ClientError `call` raises: (code, HTTP status)."""
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__}({str(kwargs)[:200]}) succeeded; an error was expected")


def deployment(deployment_id, platform="Lambda", hooks=(), application=None):
    return ok(
        "deployments",
        {
            "deploymentId": deployment_id,
            "applicationName": application or f"app-{platform.lower()}",
            "computePlatform": platform,
            "hooks": [{"lifecycleEventHookExecutionId": h, "lifecycleEvent": e} for h, e in hooks],
        },
    )


def lambda_target(deployment_id, name, status="Succeeded"):
    return {
        "deploymentTargetType": "LambdaTarget",
        "lambdaTarget": {"deploymentId": deployment_id, "targetId": name, "targetArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}", "status": status},
    }


# --- PutLifecycleEventHookExecutionStatus -------------------------------------------------------


@check
def put_hook_status_succeeds_once_for_an_issued_hook():
    cd = client("codedeploy")
    deployment("d-LAMBDA0001", hooks=[("hook-a", "BeforeAllowTraffic")])
    out = cd.put_lifecycle_event_hook_execution_status(
        deploymentId="d-LAMBDA0001", lifecycleEventHookExecutionId="hook-a", status="Succeeded"
    )
    assert out["lifecycleEventHookExecutionId"] == "hook-a", out
    recorded = ok("hook-statuses")
    assert [(r["lifecycleEventHookExecutionId"], r["lifecycleEvent"], r["status"]) for r in recorded] == [
        ("hook-a", "BeforeAllowTraffic", "Succeeded")
    ], recorded
    again = error(
        cd.put_lifecycle_event_hook_execution_status,
        deploymentId="d-LAMBDA0001",
        lifecycleEventHookExecutionId="hook-a",
        status="Failed",
    )
    assert again == ("LifecycleEventAlreadyCompletedException", 400), again


@check
def put_hook_status_refuses_statuses_other_than_succeeded_and_failed():
    cd = client("codedeploy")
    deployment("d-LAMBDA0002", hooks=[("hook-b", "AfterAllowTraffic")])
    for status in ("Pending", "InProgress", "Skipped", "Unknown"):
        got = error(
            cd.put_lifecycle_event_hook_execution_status,
            deploymentId="d-LAMBDA0002",
            lifecycleEventHookExecutionId="hook-b",
            status=status,
        )
        assert got == ("InvalidLifecycleEventHookExecutionStatusException", 400), (status, got)
    assert ok("hook-statuses") == []
    cd.put_lifecycle_event_hook_execution_status(
        deploymentId="d-LAMBDA0002", lifecycleEventHookExecutionId="hook-b", status="Failed"
    )


@check
def put_hook_status_refuses_a_hook_codedeploy_never_issued():
    cd = client("codedeploy")
    deployment("d-LAMBDA0003", hooks=[("hook-c", "AfterAllowTraffic")])
    deployment("d-LAMBDA0004", hooks=[("hook-d", "AfterAllowTraffic")])
    for deployment_id, hook_id in (("d-LAMBDA0003", "hook-never"), ("d-LAMBDA0003", "hook-d")):
        got = error(
            cd.put_lifecycle_event_hook_execution_status,
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=hook_id,
            status="Succeeded",
        )
        assert got == ("InvalidLifecycleEventHookExecutionIdException", 400), (hook_id, got)
    got = error(cd.put_lifecycle_event_hook_execution_status, deploymentId="d-LAMBDA0003", status="Succeeded")
    assert got == ("InvalidLifecycleEventHookExecutionIdException", 400), got
    assert ok("hook-statuses") == []


@check
def put_hook_status_without_a_deployment_id_or_for_an_unknown_one():
    cd = client("codedeploy")
    got = error(cd.put_lifecycle_event_hook_execution_status, lifecycleEventHookExecutionId="hook-e", status="Succeeded")
    assert got == ("DeploymentIdRequiredException", 400), got
    got = error(
        cd.put_lifecycle_event_hook_execution_status,
        deploymentId="d-NOSUCH001",
        lifecycleEventHookExecutionId="hook-e",
        status="Succeeded",
    )
    assert got == ("DeploymentDoesNotExistException", 400), got


@check
def put_hook_status_for_an_ec2_on_premises_deployment_is_unsupported():
    cd = client("codedeploy")
    deployment("d-SERVER0001", platform="Server")
    got = error(
        cd.put_lifecycle_event_hook_execution_status,
        deploymentId="d-SERVER0001",
        lifecycleEventHookExecutionId="hook-f",
        status="Succeeded",
    )
    assert got == ("UnsupportedActionForDeploymentTypeException", 400), got


@check
def ecs_deployments_have_their_five_hooks():
    cd = client("codedeploy")
    events = ["BeforeInstall", "AfterInstall", "AfterAllowTestTraffic", "BeforeAllowTraffic", "AfterAllowTraffic"]
    deployment("d-ECS000001", platform="ECS", hooks=[(f"hook-ecs-{i}", e) for i, e in enumerate(events)])
    for i in range(len(events)):
        cd.put_lifecycle_event_hook_execution_status(
            deploymentId="d-ECS000001", lifecycleEventHookExecutionId=f"hook-ecs-{i}", status="Succeeded"
        )
    assert [r["lifecycleEvent"] for r in ok("hook-statuses")] == events


@check
def the_hooks_control_endpoint_issues_only_what_codedeploy_would():
    deployment("d-LAMBDA0005")
    deployment("d-SERVER0002", platform="Server")
    assert control("hooks", {"deploymentId": "d-NOSUCH002", "lifecycleEventHookExecutionId": "h"})[0] == 404
    assert control("hooks", {"deploymentId": "d-SERVER0002", "lifecycleEventHookExecutionId": "h"})[0] == 400
    bad_event = {"deploymentId": "d-LAMBDA0005", "lifecycleEventHookExecutionId": "h", "lifecycleEvent": "AfterAllowTestTraffic"}
    assert control("hooks", bad_event)[0] == 400
    assert ok("hooks", {"deploymentId": "d-LAMBDA0005", "lifecycleEventHookExecutionId": "h"})["hooks"] == [
        {"lifecycleEventHookExecutionId": "h", "lifecycleEvent": "AfterAllowTraffic"}
    ]


# --- BatchGetDeploymentTargets and ListDeploymentTargets ----------------------------------------


def seeded_targets(deployment_id, count):
    deployment(deployment_id)
    targets = [lambda_target(deployment_id, f"fn-{i}", "Failed" if i == 1 else "Succeeded") for i in range(count)]
    ok("deployment-targets", {"deploymentId": deployment_id, "targets": targets})
    return targets


@check
def batch_get_deployment_targets_answers_the_ids_asked_for():
    cd = client("codedeploy")
    targets = seeded_targets("d-TARGETS01", 3)
    out = cd.batch_get_deployment_targets(deploymentId="d-TARGETS01", targetIds=["fn-2", "fn-0"])
    assert [t["lambdaTarget"]["targetId"] for t in out["deploymentTargets"]] == ["fn-2", "fn-0"], out
    assert out["deploymentTargets"][1]["lambdaTarget"]["targetArn"] == targets[0]["lambdaTarget"]["targetArn"]


@check
def batch_get_deployment_targets_errors():
    cd = client("codedeploy")
    lax = client("codedeploy", validate=False)
    seeded_targets("d-TARGETS02", 2)
    got = error(cd.batch_get_deployment_targets, deploymentId="d-TARGETS02", targetIds=["fn-0", "fn-nope"])
    assert got == ("DeploymentTargetDoesNotExistException", 400), got
    got = error(cd.batch_get_deployment_targets, deploymentId="d-TARGETS02", targetIds=[f"fn-{i}" for i in range(26)])
    assert got == ("DeploymentTargetListSizeExceededException", 400), got
    # The model makes deploymentId required, so only a client that skips validation can leave it out.
    got = error(lax.batch_get_deployment_targets, targetIds=["fn-0"])
    assert got == ("DeploymentIdRequiredException", 400), got
    got = error(lax.batch_get_deployment_targets, deploymentId="d-TARGETS02", targetIds=[])
    assert got == ("DeploymentTargetIdRequiredException", 400), got
    got = error(cd.batch_get_deployment_targets, deploymentId="d-NOSUCH003", targetIds=["fn-0"])
    assert got == ("DeploymentDoesNotExistException", 400), got
    # 25 is allowed (all must exist).
    seeded_targets("d-TARGETS03", 25)
    out = cd.batch_get_deployment_targets(deploymentId="d-TARGETS03", targetIds=[f"fn-{i}" for i in range(25)])
    assert len(out["deploymentTargets"]) == 25


@check
def seeded_targets_must_be_what_aws_answers():
    deployment("d-TARGETS04")
    typo = lambda_target("d-TARGETS04", "fn-0")
    typo["lambdaTarget"]["staus"] = "Failed"
    status, body = control("deployment-targets", {"deploymentId": "d-TARGETS04", "targets": [typo]})
    assert status == 400 and "staus" in body["error"], (status, body)
    bad_enum = lambda_target("d-TARGETS04", "fn-0", status="Broken")
    status, body = control("deployment-targets", {"deploymentId": "d-TARGETS04", "targets": [bad_enum]})
    assert status == 400 and "Broken" in body["error"], (status, body)


@check
def list_deployment_targets_pages_of_one():
    cd = client("codedeploy")
    seeded_targets("d-TARGETS05", 3)
    ok("page-sizes", {"operation": "ListDeploymentTargets", "size": 1})
    pages = list(cd.get_paginator("list_deployment_targets").paginate(deploymentId="d-TARGETS05"))
    assert [p["targetIds"] for p in pages] == [["fn-0"], ["fn-1"], ["fn-2"]], pages
    assert "nextToken" in pages[0] and "nextToken" not in pages[-1], pages
    failed = cd.list_deployment_targets(deploymentId="d-TARGETS05", targetFilters={"TargetStatus": ["Failed"]})
    assert failed["targetIds"] == ["fn-1"], failed
    got = error(cd.list_deployment_targets, deploymentId="d-TARGETS05", nextToken="not-a-token")
    assert got == ("InvalidNextTokenException", 400), got
    got = error(client("codedeploy", validate=False).list_deployment_targets)
    assert got == ("DeploymentIdRequiredException", 400), got
    got = error(cd.list_deployment_targets, deploymentId="d-NOSUCH004")
    assert got == ("DeploymentDoesNotExistException", 400), got
    ok("page-sizes", {"operation": "ListDeploymentTargets", "size": 100})
    whole = cd.list_deployment_targets(deploymentId="d-TARGETS05")
    assert whole["targetIds"] == ["fn-0", "fn-1", "fn-2"] and "nextToken" not in whole, whole


# --- ListActionExecutions -----------------------------------------------------------------------


EXEC_1 = "c0ffee00-1111-4e5f-8a9b-0c1d2e3f4a5b"
EXEC_2 = "c0ffee00-2222-4e5f-8a9b-0c1d2e3f4a5b"


def action(execution_id, name, status="Succeeded"):
    return {
        "pipelineExecutionId": execution_id,
        "actionExecutionId": f"{execution_id}-{name}",  # any string of the model's length
        "stageName": "Deploy",
        "actionName": name,
        "status": status,
        "startTime": "2024-05-01T10:00:00Z",
        "input": {"actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"}},
    }


@check
def list_action_executions_pages_and_filters():
    cp = client("codepipeline")
    details = [action(EXEC_1, "A"), action(EXEC_1, "B", "Failed"), action(EXEC_2, "A")]
    ok("action-executions", {"pipelineName": "shop", "actionExecutionDetails": details})
    pages = list(cp.get_paginator("list_action_executions").paginate(pipelineName="shop", PaginationConfig={"PageSize": 1}))
    assert [[d["actionExecutionId"] for d in p["actionExecutionDetails"]] for p in pages] == [
        [f"{EXEC_1}-A"],
        [f"{EXEC_1}-B"],
        [f"{EXEC_2}-A"],
    ], pages
    assert pages[0]["actionExecutionDetails"][0]["startTime"].year == 2024
    filtered = cp.list_action_executions(pipelineName="shop", filter={"pipelineExecutionId": EXEC_1}, maxResults=1)
    assert [d["actionName"] for d in filtered["actionExecutionDetails"]] == ["A"] and filtered["nextToken"], filtered
    second = cp.list_action_executions(
        pipelineName="shop", filter={"pipelineExecutionId": EXEC_1}, maxResults=1, nextToken=filtered["nextToken"]
    )
    assert [d["actionName"] for d in second["actionExecutionDetails"]] == ["B"] and "nextToken" not in second, second
    whole = cp.list_action_executions(pipelineName="shop")
    assert len(whole["actionExecutionDetails"]) == 3 and "nextToken" not in whole, whole


@check
def list_action_executions_errors():
    cp = client("codepipeline")
    lax = client("codepipeline", validate=False)
    ok("action-executions", {"pipelineName": "shop", "actionExecutionDetails": [action(EXEC_1, "A")]})
    got = error(cp.list_action_executions, pipelineName="no-such-pipeline")
    assert got == ("PipelineNotFoundException", 400), got
    got = error(lax.list_action_executions, pipelineName="shop", maxResults=0)
    assert got == ("ValidationException", 400), got
    got = error(lax.list_action_executions, pipelineName="shop", maxResults=101)
    assert got == ("ValidationException", 400), got
    got = error(lax.list_action_executions)
    assert got == ("ValidationException", 400), got
    got = error(cp.list_action_executions, pipelineName="shop", nextToken="bm90LWEtdG9rZW4=")
    assert got == ("InvalidNextTokenException", 400), got
    typo = action(EXEC_1, "A")
    typo["stagename"] = "Deploy"
    status, body = control("action-executions", {"pipelineName": "shop", "actionExecutionDetails": [typo]})
    assert status == 400 and "stagename" in body["error"], (status, body)


@check
def list_action_executions_of_a_pipeline_moto_has():
    cp = client("codepipeline")
    iam = client("iam")
    role = iam.create_role(RoleName="cp", AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}],
            }
        ))
    cp.create_pipeline(
        pipeline={
            "name": "moto-pipeline",
            "roleArn": role["Role"]["Arn"],
            "artifactStore": {"type": "S3", "location": "bucket"},
            "stages": [
                {"name": "Source", "actions": [{"name": "S", "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}, "outputArtifacts": [{"name": "o"}], "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"}}]},
                {"name": "Deploy", "actions": [{"name": "D", "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "CodeDeploy", "version": "1"}, "inputArtifacts": [{"name": "o"}], "configuration": {"ApplicationName": "a", "DeploymentGroupName": "g"}}]},
            ],
        }
    )
    assert cp.list_action_executions(pipelineName="moto-pipeline")["actionExecutionDetails"] == []


# --- CloudWatch DescribeAlarms ------------------------------------------------------------------


def alarms(names):
    cw = client("cloudwatch")
    for name in names:
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="HTTPCode_Target_5XX_Count",
            Namespace="AWS/ApplicationELB",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5.0,
            ComparisonOperator="GreaterThanThreshold",
        )
    return cw


@check
def describe_alarms_pages_of_one():
    cw = alarms(["web-5xx", "web-latency", "web-errors", "other-alarm"])
    pages = list(cw.get_paginator("describe_alarms").paginate(AlarmNamePrefix="web-", PaginationConfig={"PageSize": 1}))
    names = [[a["AlarmName"] for a in p["MetricAlarms"]] for p in pages]
    assert sorted(sum(names, [])) == ["web-5xx", "web-errors", "web-latency"] and all(len(n) == 1 for n in names), names
    assert "NextToken" in pages[0] and "NextToken" not in pages[-1], pages
    everything = cw.describe_alarms()
    assert len(everything["MetricAlarms"]) == 4 and "NextToken" not in everything, everything
    got = error(cw.describe_alarms, NextToken="garbage")
    assert got == ("InvalidNextToken", 400), got
    # A token continues only the listing it came from.
    first = cw.describe_alarms(AlarmNamePrefix="web-", MaxRecords=1)
    got = error(cw.describe_alarms, AlarmNamePrefix="other", NextToken=first["NextToken"])
    assert got == ("InvalidNextToken", 400), got


@check
def describe_alarms_default_page_is_fifty():
    cw = alarms([f"many-{i:03}" for i in range(51)])
    first = cw.describe_alarms()
    assert len(first["MetricAlarms"]) == 50 and first["NextToken"], len(first["MetricAlarms"])
    rest = cw.describe_alarms(NextToken=first["NextToken"])
    assert len(rest["MetricAlarms"]) == 1 and "NextToken" not in rest, rest


@check
def describe_alarms_shape_is_the_models():
    cw = alarms(["shape-5xx"])
    cw.set_alarm_state(AlarmName="shape-5xx", StateValue="ALARM", StateReason="test")
    out = cw.describe_alarms(StateValue="ALARM")
    (alarm,) = out["MetricAlarms"]
    assert alarm["AlarmName"] == "shape-5xx"
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:shape-5xx", alarm["AlarmArn"]
    assert alarm["StateValue"] == "ALARM" and alarm["StateReason"] == "test"
    assert alarm["StateUpdatedTimestamp"].year >= 2024
    assert alarm["Namespace"] == "AWS/ApplicationELB" and alarm["Threshold"] == 5.0
    assert out["CompositeAlarms"] == []
    got = error(client("cloudwatch", validate=False).describe_alarms, MaxRecords=101)
    assert got[1] == 400, got


# --- faults --------------------------------------------------------------------------------------


@check
def drop_after_takes_effect_and_loses_the_answer():
    cd = client("codedeploy", retries=1)
    deployment("d-DROPAFTER1", hooks=[("hook-g", "AfterAllowTraffic")])
    ok("faults", {"operation": "PutLifecycleEventHookExecutionStatus", "dropAfter": True, "count": 1})
    try:
        cd.put_lifecycle_event_hook_execution_status(
            deploymentId="d-DROPAFTER1", lifecycleEventHookExecutionId="hook-g", status="Succeeded"
        )
        raise AssertionError("the answer was not dropped")
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError):
        pass
    assert [r["status"] for r in ok("hook-statuses")] == ["Succeeded"], "the report took effect"
    got = error(
        cd.put_lifecycle_event_hook_execution_status,
        deploymentId="d-DROPAFTER1",
        lifecycleEventHookExecutionId="hook-g",
        status="Succeeded",
    )
    assert got == ("LifecycleEventAlreadyCompletedException", 400), got


@check
def drop_before_never_reaches_the_service():
    cd = client("codedeploy", retries=1)
    deployment("d-DROPBEFORE", hooks=[("hook-h", "AfterAllowTraffic")])
    ok("faults", {"operation": "PutLifecycleEventHookExecutionStatus", "drop": True, "count": 1})
    try:
        cd.put_lifecycle_event_hook_execution_status(
            deploymentId="d-DROPBEFORE", lifecycleEventHookExecutionId="hook-h", status="Succeeded"
        )
        raise AssertionError("the request was not dropped")
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError):
        pass
    assert ok("hook-statuses") == []


@check
def drop_after_works_for_moto_operations_too():
    sns = client("sns", retries=1)
    sqs = client("sqs")
    topic = sns.create_topic(Name="dropped")["TopicArn"]
    queue = sqs.create_queue(QueueName="dropped-sub")["QueueUrl"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:{ACCOUNT}:dropped-sub")
    ok("faults", {"operation": "Publish", "dropAfter": True, "count": 1})
    try:
        sns.publish(TopicArn=topic, Message="hello")
        raise AssertionError("the answer was not dropped")
    except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError):
        pass
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert [json.loads(m["Body"])["Message"] for m in messages] == ["hello"], messages


# --- moto's own answers the functions rely on ---------------------------------------------------


@check
def sns_publish_limits():
    sns = client("sns")
    topic = sns.create_topic(Name="limits")["TopicArn"]
    sns.publish(TopicArn=topic, Message="x" * 262144)
    got = error(sns.publish, TopicArn=topic, Message="x" * 262145)
    assert got == ("InvalidParameter", 400), got
    # The limit is in bytes, not characters; attributes count too.
    got = error(sns.publish, TopicArn=topic, Message="é" * 131073)
    assert got == ("InvalidParameter", 400), got
    got = error(
        sns.publish,
        TopicArn=topic,
        Message="x" * 262000,
        MessageAttributes={"big": {"DataType": "String", "StringValue": "y" * 200}},
    )
    assert got == ("InvalidParameter", 400), got


@check
def sns_publish_batch_limits():
    sns = client("sns")
    topic = sns.create_topic(Name="batch")["TopicArn"]
    entries = [{"Id": f"m{i}", "Message": "hi"} for i in range(10)]
    out = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
    assert len(out["Successful"]) == 10 and not out.get("Failed"), out
    got = error(sns.publish_batch, TopicArn=topic, PublishBatchRequestEntries=entries + [{"Id": "m10", "Message": "hi"}])
    assert got == ("TooManyEntriesInBatchRequest", 400), got
    got = error(sns.publish_batch, TopicArn=topic, PublishBatchRequestEntries=[{"Id": "a", "Message": "1"}, {"Id": "a", "Message": "2"}])
    assert got == ("BatchEntryIdsNotDistinct", 400), got
    got = error(client("sns", validate=False).publish_batch, TopicArn=topic, PublishBatchRequestEntries=[])
    assert got == ("EmptyBatchRequest", 400), got
    big = [{"Id": f"b{i}", "Message": "x" * 30000} for i in range(10)]
    got = error(sns.publish_batch, TopicArn=topic, PublishBatchRequestEntries=big)
    assert got == ("BatchRequestTooLong", 400), got


@check
def scheduler_create_schedule_as_aws():
    import datetime

    scheduler = client("scheduler")
    scheduler.create_schedule_group(Name="timers")
    at = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    target = {
        "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fanout",
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/scheduler",
        "Input": json.dumps({"source": "pipewarden.alarm-fanout"}),
    }
    ok = dict(
        Name="pw-1", GroupName="timers", ScheduleExpression=f"at({at})", ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"}, Target=target, ActionAfterCompletion="DELETE",
    )
    scheduler.create_schedule(**ok)
    got = scheduler.get_schedule(Name="pw-1", GroupName="timers")
    assert got["ScheduleExpression"] == f"at({at})" and got["Target"]["Input"] == target["Input"], got
    assert error(scheduler.create_schedule, **ok) == ("ConflictException", 409)
    assert error(scheduler.create_schedule, **dict(ok, Name="pw-2", GroupName="nope")) == ("ResourceNotFoundException", 404)
    loose = client("scheduler", validate=False)
    for bad in [
        dict(ok, Name="x" * 65),
        dict(ok, Name="has space"),
        dict(ok, Name="pw-3", ScheduleExpression="at(2026-11-27 08:00:00)"),
        dict(ok, Name="pw-4", ScheduleExpression="at(2020-01-01T00:00:00)"),
        dict(ok, Name="pw-5", Target=dict(target, Input="not json")),
        dict(ok, Name="pw-6", Target={k: v for k, v in target.items() if k != "RoleArn"}),
        {k: v for k, v in dict(ok, Name="pw-7").items() if k != "FlexibleTimeWindow"},
    ]:
        got = error(loose.create_schedule, **bad)
        assert got == ("ValidationException", 400), (bad, got)


@check
def s3_conditional_writes():
    s3 = client("s3")
    s3.create_bucket(Bucket="conditional")
    first = s3.put_object(Bucket="conditional", Key="k", Body=b"v1", IfNoneMatch="*")
    got = error(s3.put_object, Bucket="conditional", Key="k", Body=b"v2", IfNoneMatch="*")
    assert got == ("PreconditionFailed", 412), got
    second = s3.put_object(Bucket="conditional", Key="k", Body=b"v2", IfMatch=first["ETag"])
    got = error(s3.put_object, Bucket="conditional", Key="k", Body=b"v3", IfMatch=first["ETag"])
    assert got == ("PreconditionFailed", 412), got
    assert s3.get_object(Bucket="conditional", Key="k")["Body"].read() == b"v2"
    assert second["ETag"] != first["ETag"]



@check
def cloudwatch_metric_data():
    """GetMetricData as AWS answers it: query ids and periods AWS refuses are refused, a query reads
    its own namespace only, data points come in pages (MaxDatapoints, NextToken, PartialData until
    the last page); PutMetricData refuses the AWS/ namespaces, which only AWS's services write."""
    import datetime

    cw = client("cloudwatch")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    dims = [{"Name": "FunctionName", "Value": "f"}]
    got = error(cw.put_metric_data, Namespace="AWS/Lambda", MetricData=[{"MetricName": "Errors", "Value": 1.0}])
    assert got == ("InvalidParameterValue", 400), got
    status, _ = control(
        "metrics",
        {
            "namespace": "AWS/Lambda",
            "metricData": [
                {"MetricName": "Errors", "Dimensions": dims, "Value": float(i), "Timestamp": (now - datetime.timedelta(minutes=i + 1)).isoformat()}
                for i in range(5)
            ],
        },
    )
    assert status == 200, status
    cw.put_metric_data(Namespace="Other", MetricData=[{"MetricName": "Errors", "Dimensions": dims, "Value": 99.0, "Timestamp": now - datetime.timedelta(minutes=1)}])

    def query(query_id="errors", period=60, namespace="AWS/Lambda"):
        return {"Id": query_id, "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Errors", "Dimensions": dims}, "Period": period, "Stat": "Sum"}}

    window = {"StartTime": now - datetime.timedelta(minutes=10), "EndTime": now}
    for bad in (query("Errors"), query("1x"), query("a-b"), query(period=90)):
        got = error(cw.get_metric_data, MetricDataQueries=[bad], **window)
        assert got == ("ValidationError", 400), (bad, got)
    got = error(cw.get_metric_data, MetricDataQueries=[query(), query()], **window)
    assert got == ("ValidationError", 400), got
    whole = cw.get_metric_data(MetricDataQueries=[query(), query("other", namespace="Other")], **window)
    values = {r["Id"]: sorted(r["Values"]) for r in whole["MetricDataResults"]}
    assert values == {"errors": [0.0, 1.0, 2.0, 3.0, 4.0], "other": [99.0]}, values
    assert "NextToken" not in whole
    pages, token, seen = 0, None, []
    while True:
        page = cw.get_metric_data(MetricDataQueries=[query()], MaxDatapoints=2, **window, **({"NextToken": token} if token else {}))
        pages += 1
        result = page["MetricDataResults"][0]
        seen += result["Values"]
        token = page.get("NextToken")
        assert result["StatusCode"] == ("PartialData" if token else "Complete"), result
        if not token:
            break
    assert (pages, sorted(seen)) == (3, [0.0, 1.0, 2.0, 3.0, 4.0]), (pages, seen)
    got = error(cw.get_metric_data, MetricDataQueries=[query()], NextToken="made-up", **window)
    assert got == ("InvalidNextToken", 400), got
    # Percentiles, and a start rounded down to the minute: a point 10 s into a minute is read by a
    # start 30 s into it.
    p90 = {"Id": "p", "MetricStat": dict(query()["MetricStat"], Stat="p90", Period=600)}
    values = cw.get_metric_data(MetricDataQueries=[p90], **window)["MetricDataResults"][0]["Values"]
    assert values == [4.0], values
    minute = now.replace(second=0)
    point = minute - datetime.timedelta(seconds=110)
    cw.put_metric_data(Namespace="Other", MetricData=[{"MetricName": "Rounded", "Value": 7.0, "Timestamp": point}])
    rounded = {"Id": "r", "MetricStat": {"Metric": {"Namespace": "Other", "MetricName": "Rounded"}, "Period": 60, "Stat": "Sum"}}
    late = {"StartTime": point + datetime.timedelta(seconds=20), "EndTime": now}
    values = cw.get_metric_data(MetricDataQueries=[rounded], **late)["MetricDataResults"][0]["Values"]
    assert values == [7.0], values


def main():
    passed = failed = 0
    for fn in CHECKS:
        reset()
        try:
            fn()
            passed += 1
        except Exception:
            failed += 1
            print(f"FAILED {fn.__name__}:\n{traceback.format_exc()}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
