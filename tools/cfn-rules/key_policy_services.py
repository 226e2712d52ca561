"""cfn-lint rules of Pipewarden's own (run by `make test` with `--append-rules tools/cfn-rules`).

E9101: every AWS service that writes to a resource encrypted with a KMS key of the template must
be allowed to use that key by the key's policy, or the write fails on a real account (log groups
do not even create). And the key policy grants no service principal that nothing of the template
needs. Who writes to what, as the AWS documentation says:

- a log group (KmsKeyId): CloudWatch Logs, `logs.<region>.amazonaws.com`, with the
  `kms:EncryptionContext:aws:logs:arn` condition;
- an SNS topic (KmsMasterKeyId): CloudWatch for alarms whose actions name it, every service its
  topic policy lets publish, CodeStar Notifications for notification rules targeting it,
  EventBridge for rules targeting it;
- an SQS queue (KmsMasterKeyId): every service its queue policy lets send, EventBridge for rules
  using it as a dead-letter queue or target, SNS for subscriptions using it as a dead-letter queue.

cfn-lint reads SAM resources untransformed, so a function's EventBridgeRule and SNS events count
as the rules and subscriptions SAM makes of them. Statements under Fn::If count as present.
"""

from fnmatch import fnmatchcase

from cfnlint.rules import CloudFormationLintRule, RuleMatch

SEND = ["kms:Decrypt", "kms:GenerateDataKey"]
LOGS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"]
LOGS_CONTEXT = "kms:EncryptionContext:aws:logs:arn"


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _branches(value):
    """The values an Fn::If may take (both branches), or the value itself."""
    if isinstance(value, dict) and "Fn::If" in value and isinstance(value["Fn::If"], list):
        out = []
        for branch in value["Fn::If"][1:]:
            out.extend(_branches(branch))
        return out
    if isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def _service_name(value):
    """A service principal as text, with the region and URL suffix of a Fn::Sub normalised."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        value = sub[0] if isinstance(sub, list) else sub
    if not isinstance(value, str):
        return None
    return value.replace("${AWS::Region}", "<region>").replace("${AWS::URLSuffix}", "amazonaws.com")


def _referenced(value, resources):
    """The logical id a Ref or Fn::GetAtt names, when it is a resource of the template."""
    if isinstance(value, dict):
        if "Ref" in value and value["Ref"] in resources:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            name = target[0] if isinstance(target, list) else str(target).split(".")[0]
            if name in resources:
                return name
    return None


def _actions_cover(statement_actions, needed):
    patterns = [a.lower() for a in _as_list(statement_actions) if isinstance(a, str)]
    return all(any(fnmatchcase(n.lower(), p) for p in patterns) for n in needed)


def _allowed_services(document, action):
    """Service principals an access policy allows `action` to."""
    services = set()
    for statement in _as_list((document or {}).get("Statement")):
        for st in _branches(statement):
            if not isinstance(st, dict) or st.get("Effect") != "Allow":
                continue
            if not _actions_cover(st.get("Action"), [action]):
                continue
            principal = st.get("Principal")
            if isinstance(principal, dict):
                for service in _as_list(principal.get("Service")):
                    name = _service_name(service)
                    if name:
                        services.add(name)
    return services


def required_uses(resources):
    """(key logical id, encrypted resource, service, needed actions, why) for every use of a key."""
    keys = {name for name, r in resources.items() if r.get("Type") == "AWS::KMS::Key"}
    encrypted = {}  # resource -> key
    for name, r in resources.items():
        props = r.get("Properties") or {}
        kind = r.get("Type")
        field = {"AWS::Logs::LogGroup": "KmsKeyId", "AWS::SNS::Topic": "KmsMasterKeyId", "AWS::SQS::Queue": "KmsMasterKeyId"}.get(kind)
        if field and _referenced(props.get(field), keys):
            encrypted[name] = _referenced(props.get(field), keys)

    uses = []

    def need(resource, service, actions, why):
        if resource in encrypted:
            uses.append((encrypted[resource], resource, service, actions, why))

    for name, r in resources.items():
        props = r.get("Properties") or {}
        kind = r.get("Type")
        if kind == "AWS::Logs::LogGroup":
            need(name, "logs.<region>.amazonaws.com", LOGS, "CloudWatch Logs encrypts its log events")
        elif kind in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
            for field in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                for action in _as_list(props.get(field)):
                    for value in _branches(action):
                        target = _referenced(value, resources)
                        if target:
                            need(target, "cloudwatch.amazonaws.com", SEND, f"alarm {name} notifies it ({field})")
        elif kind == "AWS::SNS::TopicPolicy":
            for topic in _as_list(props.get("Topics")):
                target = _referenced(topic, resources)
                for service in _allowed_services(props.get("PolicyDocument"), "sns:Publish"):
                    need(target, service, SEND, f"topic policy {name} lets it publish")
        elif kind == "AWS::SQS::QueuePolicy":
            for queue in _as_list(props.get("Queues")):
                target = _referenced(queue, resources)
                for service in _allowed_services(props.get("PolicyDocument"), "sqs:SendMessage"):
                    need(target, service, SEND, f"queue policy {name} lets it send")
        elif kind == "AWS::Events::Rule":
            for target in _as_list(props.get("Targets")):
                if not isinstance(target, dict):
                    continue
                dlq = _referenced((target.get("DeadLetterConfig") or {}).get("Arn"), resources)
                if dlq:
                    need(dlq, "events.amazonaws.com", SEND, f"rule {name} sends undeliverable events to it")
                direct = _referenced(target.get("Arn"), resources)
                if direct and resources[direct].get("Type") in ("AWS::SNS::Topic", "AWS::SQS::Queue"):
                    need(direct, "events.amazonaws.com", SEND, f"rule {name} targets it")
        elif kind == "AWS::SNS::Subscription":
            dlq = _referenced((props.get("RedrivePolicy") or {}).get("deadLetterTargetArn"), resources)
            if dlq:
                need(dlq, "sns.amazonaws.com", SEND, f"subscription {name} sends undeliverable messages to it")
        elif kind == "AWS::Serverless::Function":
            # cfn-lint checks SAM resources untransformed: SAM's EventBridge rules and SNS
            # subscriptions are the function's Events.
            for event_name, event in (props.get("Events") or {}).items():
                if not isinstance(event, dict):
                    continue
                event_props = event.get("Properties") or {}
                if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent", "Schedule", "ScheduleV2"):
                    dlq = _referenced((event_props.get("DeadLetterConfig") or {}).get("Arn"), resources)
                    if dlq:
                        need(dlq, "events.amazonaws.com", SEND, f"{name}'s rule {event_name} sends undeliverable events to it")
                elif event.get("Type") == "SNS":
                    dlq = _referenced((event_props.get("RedrivePolicy") or {}).get("deadLetterTargetArn"), resources)
                    if dlq:
                        need(dlq, "sns.amazonaws.com", SEND, f"{name}'s subscription {event_name} sends undeliverable messages to it")
        elif kind == "AWS::CodeStarNotifications::NotificationRule":
            for target in _as_list(props.get("Targets")):
                topic = _referenced((target or {}).get("TargetAddress"), resources)
                if topic:
                    need(topic, "codestar-notifications.amazonaws.com", SEND, f"notification rule {name} targets it")
    return uses


def key_statements(resources, key):
    """(statement, service) pairs of the key policy's Allow statements for service principals."""
    policy = (resources[key].get("Properties") or {}).get("KeyPolicy") or {}
    out = []
    for statement in _as_list(policy.get("Statement")):
        for st in _branches(statement):
            if not isinstance(st, dict) or st.get("Effect") != "Allow":
                continue
            principal = st.get("Principal")
            if isinstance(principal, dict):
                for service in _as_list(principal.get("Service")):
                    for value in _branches(service):
                        name = _service_name(value)
                        if name:
                            out.append((st, name))
    return out


def _grants(statement, service, use_service, actions):
    if service != use_service:
        return False
    if not _actions_cover(statement.get("Action"), actions):
        return False
    if use_service.startswith("logs."):
        conditions = statement.get("Condition") or {}
        return any(LOGS_CONTEXT in (block or {}) for block in conditions.values() if isinstance(block, dict))
    return True


def problems(resources):
    """Every missing and every needless service grant, as (path, message)."""
    found = []
    uses = required_uses(resources)
    for key, resource, service, actions, why in uses:
        if not any(_grants(st, name, service, actions) for st, name in key_statements(resources, key)):
            extra = f" with a {LOGS_CONTEXT} condition" if service.startswith("logs.") else ""
            found.append(
                (
                    ["Resources", key, "Properties", "KeyPolicy"],
                    f"{resource} is encrypted with {key}, and {service} must use it ({why}), but the key policy "
                    f"does not allow {service} {', '.join(actions)}{extra}",
                )
            )
    keys = {k for k, r in resources.items() if r.get("Type") == "AWS::KMS::Key"}
    for key in keys:
        needed = {service for k, _, service, _, _ in uses if k == key}
        for statement, service in key_statements(resources, key):
            if service not in needed:
                found.append(
                    (
                        ["Resources", key, "Properties", "KeyPolicy"],
                        f"the policy of {key} lets {service} use it ({statement.get('Sid', 'no Sid')}), "
                        f"but nothing {key} encrypts is written by {service}",
                    )
                )
    return found


class KeyPolicyServices(CloudFormationLintRule):
    id = "E9101"
    shortdesc = "KMS key policies allow exactly the services that use the key"
    description = (
        "A resource encrypted with a key of the template is written by an AWS service (CloudWatch "
        "Logs, CloudWatch alarms, EventBridge, SNS, CodeStar Notifications) that the key policy must allow; "
        "and the key policy grants no service that nothing needs."
    )
    source_url = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html"
    tags = ["kms", "pipewarden"]

    def match(self, cfn):
        return [RuleMatch(path, message) for path, message in problems(cfn.template.get("Resources", {}))]
