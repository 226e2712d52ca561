"""Lints every IAM policy the stack creates with parliament (offline), after the SAM transform.

Usage: iam_lint.py TEMPLATE [--allow tools/iam-lint-allow.yaml] [--param Name=Value ...]

The SAM transform turns each function's `Policies` into an IAM role; intrinsic functions are
resolved with sample values (account 123456789012, us-east-1, parameter defaults or samples,
resource ARNs of the right shape) so parliament sees real ARNs and can check every action against
its resource type. Each finding either is fixed or is listed in the allow file with the reason;
any other finding fails (exit 1). An allowed finding that no longer occurs also fails, so the
allow list never outlives its reason.
"""

import argparse
import json
import os
import sys

import yaml
from cfnlint.decode import decode
from parliament import analyze_policy_string
from samtranslator.translator.transform import transform as sam_transform

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
STACK = "pipewarden"

# Values for parameters without a default, of the shape their AllowedPattern asks for.
SAMPLE_PARAMETERS = {
    "ConfigWriterArn": f"arn:aws:iam::{ACCOUNT}:role/deployer",
}


class NoManagedPolicies:
    """SAM asks for managed policy ARNs only to expand short names; the template uses none."""

    def load(self):
        return {}


def arn_of(resources, name, attribute="Arn"):
    kind = resources[name]["Type"]
    physical = f"{STACK}-{name}-ABC123"
    if kind == "AWS::SNS::Topic":
        return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT}:{physical}"
    if kind == "AWS::SQS::Queue":
        if attribute == "QueueName":
            return physical
        if attribute == "QueueUrl":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
        return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{physical}"
    if kind == "AWS::S3::Bucket":
        return f"arn:{PARTITION}:s3:::{physical.lower()}"
    if kind == "AWS::KMS::Key":
        return f"arn:{PARTITION}:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    if kind == "AWS::Lambda::Function":
        return f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{physical}"
    if kind == "AWS::IAM::Role":
        return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{physical}"
    if kind == "AWS::Logs::LogGroup":
        return f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{physical}:*"
    return f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:resource/{physical}"


def ref_of(resources, name):
    kind = resources[name]["Type"]
    if kind in ("AWS::SNS::Topic",):
        return arn_of(resources, name)
    if kind == "AWS::SQS::Queue":
        return arn_of(resources, name, "QueueUrl")
    if kind == "AWS::S3::Bucket":
        return arn_of(resources, name).split(":::")[1]
    if kind == "AWS::KMS::Key":
        return "1234abcd-12ab-34cd-56ef-1234567890ab"
    return f"{STACK}-{name}-ABC123"


class Resolver:
    def __init__(self, template, overrides):
        self.resources = template.get("Resources", {})
        self.parameters = {}
        for name, spec in (template.get("Parameters") or {}).items():
            value = overrides.get(name, spec.get("Default", SAMPLE_PARAMETERS.get(name, "")))
            if spec.get("Type") == "CommaDelimitedList":
                value = [v for v in str(value).split(",")] if value != "" else [""]
            self.parameters[name] = value
        self.pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": REGION,
            "AWS::Partition": PARTITION,
            "AWS::StackName": STACK,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.conditions = template.get("Conditions") or {}

    def condition(self, name):
        return bool(self.value(self.conditions[name]))

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return ref_of(self.resources, name)
        raise KeyError(f"Ref to unknown {name}")

    def sub(self, text, extra):
        out, i = "", 0
        while i < len(text):
            start = text.find("${", i)
            if start < 0:
                out += text[i:]
                break
            end = text.index("}", start)
            out += text[i:start]
            name = text[start + 2 : end]
            if name.startswith("!"):
                out += "${" + name[1:] + "}"
            elif name in extra:
                out += str(self.value(extra[name]))
            elif "." in name and name.split(".")[0] in self.resources:
                resource, attribute = name.split(".", 1)
                out += arn_of(self.resources, resource, attribute)
            else:
                out += str(self.ref(name))
            i = end + 1
        return out

    def value(self, node):
        if isinstance(node, list):
            out = []
            for item in node:
                if isinstance(item, dict) and item.get("Ref") == "AWS::NoValue":
                    continue
                if isinstance(item, dict) and "Fn::If" in item:
                    resolved = self.value(item)
                    if resolved is None:
                        continue
                    out.append(resolved)
                    continue
                out.append(self.value(item))
            return out
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return None if arg == "AWS::NoValue" else self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return arn_of(self.resources, name, attribute)
            if key == "Fn::Sub":
                text, extra = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                return self.sub(text, extra)
            if key == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.value(items))
            if key == "Fn::Equals":
                a, b = self.value(arg)
                return a == b
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Select":
                index, items = arg
                return self.value(items)[int(index)]
        return {k: self.value(v) for k, v in node.items() if not (isinstance(v, dict) and v.get("Ref") == "AWS::NoValue")}


def identity_policies(path, overrides):
    template, problems = decode(path)
    if problems:
        raise SystemExit(f"{path}: {problems}")
    parameters = {k: v.get("Default", SAMPLE_PARAMETERS.get(k, "")) for k, v in template.get("Parameters", {}).items()}
    parameters.update(overrides)
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            # What `sam package` puts there; the code does not matter to its policies.
            resource.setdefault("Properties", {})["CodeUri"] = "s3://artifacts/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)  # SAM fills in pseudo parameters from it
    transformed = sam_transform(json.loads(json.dumps(template)), parameters, NoManagedPolicies())
    resolver = Resolver(transformed, overrides)
    for name, resource in transformed.get("Resources", {}).items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        props = resource.get("Properties") or {}
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies") or []:
                yield f"{name}/{policy.get('PolicyName')}", resolver.value(policy["PolicyDocument"])
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            yield name, resolver.value(props["PolicyDocument"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template")
    parser.add_argument("--allow", help="YAML list of {policy, issue, reason} that are accepted")
    parser.add_argument("--param", action="append", default=[], help="Name=Value, overriding a parameter")
    args = parser.parse_args()
    overrides = dict(p.split("=", 1) for p in args.param)
    allowed = []
    if args.allow:
        with open(args.allow, encoding="utf-8") as f:
            allowed = yaml.safe_load(f) or []
    seen_allowed = set()
    failures = []
    count = 0
    for policy_name, document in identity_policies(args.template, overrides):
        count += 1
        for finding in analyze_policy_string(json.dumps(document), include_community_auditors=True).findings:
            match = next(
                (i for i, a in enumerate(allowed) if a["policy"] == policy_name and a["issue"] == finding.issue),
                None,
            )
            line = f"{policy_name}: {finding.issue} ({finding.severity}) {finding.detail} {finding.location}"
            if match is None:
                failures.append(line)
            else:
                seen_allowed.add(match)
                print(f"allowed: {line} -- {allowed[match]['reason']}")
    for i, a in enumerate(allowed):
        if i not in seen_allowed:
            failures.append(f"{a['policy']}: {a['issue']} is allowed in {args.allow} but no longer found: remove it")
    if count == 0:
        failures.append("no IAM policy found: the linter read nothing")
    for line in failures:
        print(f"FINDING {line}")
    print(f"iam-lint: {count} policies, {len(failures)} findings")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
