"""CPU time per event of the Python peer (terraform-aws-modules' notify-slack) doing what its
handler does before the HTTP call: read the SNS records, build the Slack payload, encode it for
sending. Prints JSON: {"events": n, "iterations": k, "cpu_us_per_event": x}.

Usage: python cpu_peer.py PEER_DIR ITERATIONS EVENT_FILE...
"""

import json
import os
import sys
import time
import urllib.parse

peer_dir, iterations, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("SLACK_CHANNEL", "alerts")
os.environ.setdefault("SLACK_USERNAME", "notify-slack")
os.environ.setdefault("SLACK_EMOJI", ":aws:")
sys.path.insert(0, peer_dir)
import notify_slack  # noqa: E402

raw = [open(f, "rb").read() for f in files]


def handle(data: bytes) -> None:
    event = json.loads(data)
    for record in event["Records"]:
        sns = record["Sns"]
        payload = notify_slack.get_slack_message_payload(
            message=sns["Message"],
            region=sns["TopicArn"].split(":")[3],
            subject=sns["Subject"],
            message_attributes=sns.get("MessageAttributes"),
        )
        urllib.parse.urlencode({"payload": json.dumps(payload)}).encode("utf-8")


for data in raw:  # warm up, as the Rust side does
    handle(data)
started = time.thread_time_ns()
for _ in range(iterations):
    for data in raw:
        handle(data)
spent = time.thread_time_ns() - started
print(json.dumps({"events": len(raw), "iterations": iterations,
                  "cpu_us_per_event": spent / 1000 / (iterations * len(raw))}))
