"""A minimal Lambda runtime loop for a Python handler, as Lambda's Python runtime runs one: import
the handler module (its module-level clients included), then poll the Runtime API for work.

Usage: AWS_LAMBDA_RUNTIME_API=host:port LAMBDA_TASK_ROOT=dir _HANDLER=module.function python runtime_loop.py
"""

import importlib
import json
import os
import sys
import traceback
import urllib.request

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), function_name)
base = f"http://{api}/2018-06-01/runtime/invocation"

while True:
    with urllib.request.urlopen(f"{base}/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(response.read())
    try:
        body = json.dumps(handler(event, None)).encode()
        url = f"{base}/{request_id}/response"
    except Exception as error:  # noqa: BLE001 - every failure is reported to the runtime
        body = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__,
                           "stackTrace": traceback.format_exc().splitlines()}).encode()
        url = f"{base}/{request_id}/error"
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read()
