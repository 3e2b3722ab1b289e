"""files/iam: every AWS call the deploy makes is allowed, and nothing broader.

The calls are derived from the code: boto3 operations named in the amazon.aws.aws_ssm plugin
(and its plugin_utils), in this collection's plugins and in tools/ and bin/, the presigned URL
methods, the paginators, the aws_ec2 inventory sources and the amazon.aws lookups the playbooks
use. Each is turned into the IAM requests it causes (action, resource ARN, condition keys) and
evaluated against the policy documents with a small evaluator (Allow/Deny, wildcards, the
condition operators the documents use). Denied look-alikes check that nothing broader passes.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import botocore
import botocore.session
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
IAM = REPO / "files" / "iam"
AMAZON_AWS = Path(__import__("ansible_collections.amazon.aws", fromlist=["x"]).__path__[0])

ACCOUNT = "111122223333"
BUCKET = "atp-prod-ssm-transfer"
KEY_ID = "0d9a1c54-6a7e-4b8e-9a43-5b1f3c2e7d10"
REGION = "ap-southeast-1"
USER = "trading-ops"
INSTANCE = "i-08726dc37133b2454"
PREFIX = "/atp/prod/backend/"
PROJECT_TAGS = {"Project": "automated-trading-platform", "Role": "backend"}
PLACEHOLDERS = {"ACCOUNT_ID": ACCOUNT, "TRANSFER_BUCKET": BUCKET, "KMS_KEY_ID": KEY_ID}
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"

# Actions that exist only as Resource "*" (no resource-level permissions in IAM).
STAR_ONLY = {"ec2:DescribeInstances", "ssmmessages:CreateControlChannel",
             "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
             "ssmmessages:OpenDataChannel"}
# Allowed though no Python here calls it: the session-manager-plugin binary resumes a session
# whose websocket dropped (ResumeSession), on the operator's behalf.
CALLED_OUTSIDE_PYTHON = {"ssm:ResumeSession"}
S3_TRANSFER_METHODS = {"upload_fileobj", "download_fileobj", "upload_file", "download_file",
                       "generate_presigned_url", "get_paginator"}
SERVICES = ("ssm", "s3", "ec2", "kms", "sts", "iam")


# --------------------------------------------------------------------------- the evaluator


@dataclass
class Request:
    action: str
    resource: str
    context: dict = field(default_factory=dict)
    why: str = ""


def load(name: str) -> dict:
    text = (IAM / name).read_text()
    for token, value in PLACEHOLDERS.items():
        text = text.replace(token, value)
    return json.loads(text)


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


# AWS: a key absent from the request context makes a positive operator false, but a negated
# one ("the key does not match ...") TRUE, and every ...IfExists operator TRUE as well. So a Deny
# with StringNotEquals or StringNotEqualsIfExists on a header also denies requests WITHOUT it.
NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals",
           "ArnNotLike", "NumericNotEquals", "DateNotEquals", "NotIpAddress"}


def _condition_holds(operator: str, key: str, wanted: object, context: dict) -> bool:
    values = [str(v) for v in _as_list(wanted)]
    if operator == "Null":  # "true": the key is absent; "false": it is present
        return any((v.lower() == "true") == (key not in context) for v in values)
    base, if_exists = (operator[:-8], True) if operator.endswith("IfExists") else (operator, False)
    if key not in context:
        return if_exists or base in NEGATED
    actual = [str(v) for v in _as_list(context[key])]
    if base in ("StringEquals", "Bool"):
        return any(a == v for a in actual for v in values)
    if base in ("StringLike", "ArnLike", "ArnEquals"):
        return any(fnmatch.fnmatchcase(a, v) for a in actual for v in values)
    if base == "StringNotEquals":
        return all(a != v for a in actual for v in values)
    if base in ("StringNotLike", "ArnNotLike", "ArnNotEquals"):
        return not any(fnmatch.fnmatchcase(a, v) for a in actual for v in values)
    raise AssertionError(f"the evaluator does not know condition operator {operator}")


def _matches(statement: dict, request: Request) -> bool:
    actions = _as_list(statement["Action"])
    if not any(fnmatch.fnmatchcase(request.action.lower(), a.lower()) for a in actions):
        return False
    resources = [r.replace("${aws:username}", request.context.get("aws:username", "\0"))
                 for r in _as_list(statement.get("Resource", "*"))]
    if not any(fnmatch.fnmatchcase(request.resource, r) for r in resources):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, wanted in keys.items():
            if not _condition_holds(operator, key, wanted, request.context):
                return False
    return True


def allowed(policies: list[dict], request: Request) -> bool:
    verdict = False
    for policy in policies:
        for statement in policy["Statement"]:
            if _matches(statement, request):
                if statement["Effect"] == "Deny":
                    return False
                verdict = True
    return verdict


# ------------------------------------------------------------------ the calls, from the code


@functools.cache
def _boto_operations() -> frozenset[str]:
    session = botocore.session.get_session()
    names = set(S3_TRANSFER_METHODS)
    for service in SERVICES:
        names |= {botocore.xform_name(op) for op in
                  session.get_service_model(service).operation_names}
    return frozenset(names)


def code_files() -> list[Path]:
    files = [AMAZON_AWS / "plugins/connection/aws_ssm.py",
             *sorted((AMAZON_AWS / "plugins/plugin_utils/ssm").glob("*.py"))]
    files += sorted((REPO / "collections/ansible_collections/atp/deploy/plugins").rglob("*.py"))
    files += sorted((REPO / "tools").rglob("*.py")) + sorted((REPO / "bin").glob("*"))
    return [f for f in files if f.is_file()]


def calls_in(path: Path) -> set[str]:
    """boto3 operations (and S3 transfer / presign / paginate helpers) named in ``path``."""
    text = path.read_text(errors="replace")
    names = set(re.findall(r"\.([a-z_0-9]+)\(", text)) & _boto_operations()
    names -= {"get_paginator", "generate_presigned_url"}
    names |= set(re.findall(r"get_paginator\(\s*[\"']([a-z_0-9]+)[\"']", text))
    names |= {f"presigned:{m}" for m in
              re.findall(r"(?:get_url|generate_presigned_url)\(\s*[\"']([a-z_]+)[\"']", text)}
    return names


def inventory_sources() -> list[dict]:
    found = []
    for path in (REPO / "inventory").rglob("*.yml"):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and str(data.get("plugin", "")).endswith("aws_ec2"):
            found.append(data)
    return found


def shell_document() -> str:
    """The plugin sends no DocumentName unless ansible_aws_ssm_document is set: SSM uses the
    account's SSM-SessionManagerRunShell."""
    for path in (REPO / "inventory").rglob("*.yml"):
        match = re.search(r"^ansible_aws_ssm_document:\s*(\S+)", path.read_text(), re.M)
        if match:
            return match.group(1).strip("'\"")
    return "SSM-SessionManagerRunShell"


def portforward_document() -> str:
    text = (REPO / "tools/atp_ops/portforward/session.py").read_text()
    return re.search(r'^DOCUMENT = "([^"]+)"', text, re.M).group(1)


def _doc_arn(name: str) -> str:
    owner = "" if name.startswith("AWS-") else ACCOUNT  # AWS-owned documents have no account
    return f"arn:aws:ssm:{REGION}:{owner}:document/{name}"


INSTANCE_ARN = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE}"
OBJECT_ARN = (f"arn:aws:s3:::{BUCKET}/{INSTANCE}//home/ssm-user/.ansible/tmp/"
              "ansible-tmp-1-2-3/AnsiballZ_env_files.py")
TAGS = {f"ssm:resourceTag/{k}": v for k, v in PROJECT_TAGS.items()}
VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
VIA_SSM = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}


SSE_CONTEXT_KEYS = {"ServerSideEncryption": "s3:x-amz-server-side-encryption",
                    "SSEKMSKeyId": "s3:x-amz-server-side-encryption-aws-kms-key-id"}


@functools.cache
def plugin_put_context(transfer: str) -> tuple[tuple[str, str], ...]:
    """The SSE condition keys of amazon.aws.aws_ssm's S3 PUT for one transfer direction, asked
    of the plugin itself with the inventories' settings (sse_mode aws:kms, the key ARN).

    ``put`` (controller -> instance, every module payload with its arguments): the controller's
    ``upload_fileobj(..., ExtraArgs=put_args)``; amazon.aws 10.x returns ``put_args=None`` for it,
    so NO SSE header is sent (multipart UploadPart never carries one anyway). ``get`` (instance ->
    controller): the presigned ``put_object`` URL the instance curls, with the SSE headers."""
    from ansible_collections.amazon.aws.plugins.plugin_utils.ssm.s3clientmanager import (
        S3ClientManager,
    )

    client = mock.MagicMock()
    client.generate_presigned_url.return_value = "https://presigned.invalid/x"
    _, put_args = S3ClientManager(client).generate_host_commands(
        bucket_name=BUCKET, bucket_sse_mode="aws:kms", bucket_sse_kms_key_id=KEY_ARN,
        s3_path="k", in_path="/in", out_path="/out", is_windows=False, method=transfer)
    if transfer == "get":  # the URL is signed with exactly these parameters
        params = client.generate_presigned_url.call_args.kwargs["Params"]
        put_args = {k: v for k, v in params.items() if k in SSE_CONTEXT_KEYS}
    return tuple((SSE_CONTEXT_KEYS[k], v) for k, v in sorted((put_args or {}).items()))


def requests_for(operation: str, path: Path) -> list[Request]:
    """The IAM requests one boto3 operation causes in this project."""
    where = path.name
    kms_put = Request("kms:GenerateDataKey", KEY_ARN, VIA_S3, f"{where}: SSE-KMS upload")
    kms_get = Request("kms:Decrypt", KEY_ARN, VIA_S3, f"{where}: SSE-KMS object read")
    table = {
        "start_session": [
            Request("ssm:StartSession", INSTANCE_ARN, TAGS, f"{where}: session on the instance"),
            Request("ssm:StartSession",
                    _doc_arn(portforward_document() if "portforward" in str(path)
                             else shell_document()), {}, f"{where}: session document")],
        "terminate_session": [Request("ssm:TerminateSession",
                                      f"arn:aws:ssm:{REGION}:{ACCOUNT}:session/{USER}-0a1b2c3d",
                                      {"aws:username": USER}, f"{where}: own session")],
        "head_bucket": [Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {},
                                f"{where}: bucket region (HeadBucket, no prefix)")],
        "upload_fileobj": [
            Request("s3:PutObject", OBJECT_ARN, dict(plugin_put_context("put")),
                    f"{where}: upload (SSE headers as the plugin sends them: none)"),
            Request("s3:PutObject", OBJECT_ARN, {}, f"{where}: multipart UploadPart"),
            Request("s3:AbortMultipartUpload", OBJECT_ARN, {}, f"{where}: failed multipart"),
            kms_put, kms_get],
        "download_fileobj": [Request("s3:GetObject", OBJECT_ARN, {}, f"{where}: fetch"), kms_get],
        "delete_object": [Request("s3:DeleteObject", OBJECT_ARN, {}, f"{where}: delete")],
        "delete_objects": [Request("s3:DeleteObject", OBJECT_ARN, {}, f"{where}: cleanup")],
        "get_bucket_encryption": [Request("s3:GetEncryptionConfiguration",
                                          f"arn:aws:s3:::{BUCKET}", {},
                                          f"{where}: bucket default encryption check")],
        "get_bucket_versioning": [Request("s3:GetBucketVersioning", f"arn:aws:s3:::{BUCKET}",
                                          {}, f"{where}: bucket versioning check")],
        "get_bucket_lifecycle_configuration": [
            Request("s3:GetLifecycleConfiguration", f"arn:aws:s3:::{BUCKET}", {},
                    f"{where}: noncurrent expiry, when versioning is Enabled")],
        "list_objects_v2": [Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}",
                                    {"s3:prefix": f"{INSTANCE}/"}, f"{where}: list own prefix")],
        "presigned:get_object": [Request("s3:GetObject", OBJECT_ARN, {},
                                         f"{where}: instance curl GET, signed by the operator"),
                                 kms_get],
        "presigned:put_object": [Request("s3:PutObject", OBJECT_ARN,
                                         dict(plugin_put_context("get")),
                                         f"{where}: instance curl PUT"), kms_put],
        "get_parameters": [
            Request("ssm:GetParameters",
                    f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{PREFIX}env.aws/"
                    "EXCHANGE_CUSTOM_API_KEY", {}, f"{where}: env values"),
            Request("kms:Decrypt", KEY_ARN, VIA_SSM, f"{where}: SecureString decryption")],
        "describe_instances": [Request("ec2:DescribeInstances", "*",
                                       {"aws:RequestedRegion": REGION}, "aws_ec2 inventory")],
    }
    if operation not in table:
        raise AssertionError(f"{where} calls {operation}: add the IAM requests it causes to "
                             "requests_for() and allow them in files/iam/operator-policy.json")
    return table[operation]


@functools.cache
def required_requests() -> tuple[Request, ...]:
    found: list[Request] = []
    for path in code_files():
        for operation in sorted(calls_in(path)):
            found += requests_for(operation, path)
    for source in inventory_sources():
        found += requests_for("describe_instances", Path("aws_ec2 inventory"))
        assert source.get("regions"), "aws_ec2 inventory without regions calls DescribeRegions"
        assert not source.get("use_ssm_inventory"), "use_ssm_inventory calls ssm:GetInventory"
    lookups = set()
    for base in ("playbooks", "roles", "inventory"):
        for path in (REPO / base).rglob("*.yml"):
            lookups |= set(re.findall(r"(?:lookup|query)\(\s*['\"](amazon\.aws\.\w+)",
                                      path.read_text()))
    assert lookups <= set(), f"amazon.aws lookups {lookups}: add their IAM requests here"
    return tuple(found)


# --------------------------------------------------------------------------- tests


def operator() -> list[dict]:
    return [load("operator-policy.json"), load("transfer-bucket-policy.json")]


def test_the_calls_are_found_in_the_code():
    operations = set()
    for path in code_files():
        operations |= calls_in(path)
    assert {"start_session", "terminate_session", "head_bucket", "upload_fileobj",
            "delete_object", "presigned:get_object", "presigned:put_object",
            "get_parameters", "list_objects_v2", "delete_objects",
            "get_bucket_encryption", "get_bucket_versioning",
            "get_bucket_lifecycle_configuration"} <= operations


@pytest.mark.parametrize("request_", required_requests(), ids=lambda r: f"{r.action}:{r.why}")
def test_every_call_the_deploy_makes_is_allowed(request_: Request):
    assert allowed(operator(), request_), f"denied: {request_}"


def test_every_allowed_action_is_used():
    used = {r.action for r in required_requests()} | CALLED_OUTSIDE_PYTHON
    granted = {a for s in load("operator-policy.json")["Statement"] if s["Effect"] == "Allow"
               for a in _as_list(s["Action"])}
    assert granted - used == set()


@pytest.mark.parametrize("name", ["operator-policy.json", "instance-role-policy.json"])
def test_no_wildcard_actions_and_resource_star_only_where_aws_requires_it(name: str):
    policy = load(name)
    assert policy["Version"] == "2012-10-17"
    assert len((IAM / name).read_text()) < 6144  # managed policy size limit
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and statement.get("Sid")
        actions = _as_list(statement["Action"])
        assert all("*" not in a and "?" not in a for a in actions), statement["Sid"]
        if "*" in _as_list(statement["Resource"]):
            assert set(actions) <= STAR_ONLY, statement["Sid"]
            assert statement["Sid"].endswith("ResourceStarRequired")


def test_placeholders_are_the_only_blanks():
    for path in IAM.glob("*.json"):
        text = load(path.name)
        assert not re.search(r"ACCOUNT_ID|TRANSFER_BUCKET|KMS_KEY_ID|<|>", json.dumps(text))


DENIED = [
    Request("ssm:StartSession", INSTANCE_ARN, {"ssm:resourceTag/Project": "other"}, "other tag"),
    Request("ssm:StartSession", INSTANCE_ARN, {}, "untagged instance"),
    Request("ssm:StartSession", INSTANCE_ARN,
            {"ssm:resourceTag/Project": "automated-trading-platform",
             "ssm:resourceTag/Role": "db"}, "another role"),
    Request("ssm:StartSession", _doc_arn("AWS-StartInteractiveCommand"), {}, "any command"),
    Request("ssm:StartSession", _doc_arn("AWS-StartSSHSession"), {}, "ssh"),
    Request("ssm:StartSession", _doc_arn("AWS-StartPortForwardingSession"), {}, "unused doc"),
    Request("ssm:TerminateSession", f"arn:aws:ssm:{REGION}:{ACCOUNT}:session/alice-0a1b",
            {"aws:username": USER}, "someone else's session"),
    Request("ssm:SendCommand", INSTANCE_ARN, TAGS, "run command"),
    Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/backups/db.sql", {}, "outside i-*"),
    Request("s3:GetObject", f"arn:aws:s3:::other-bucket/{INSTANCE}/x", {}, "other bucket"),
    Request("s3:PutObject", OBJECT_ARN, {"s3:x-amz-server-side-encryption": "AES256"},
            "not KMS"),
    Request("s3:PutObject", OBJECT_ARN, {"s3:x-amz-server-side-encryption": "aws:kms",
                                         "s3:x-amz-server-side-encryption-aws-kms-key-id":
                                         "arn:aws:kms:ap-southeast-1:111122223333:key/other"},
            "another key"),
    Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""}, "whole bucket"),
    Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "backups/"}, "other prefix"),
    Request("s3:DeleteBucket", f"arn:aws:s3:::{BUCKET}", {}, "bucket admin"),
    Request("s3:PutBucketVersioning", f"arn:aws:s3:::{BUCKET}", {}, "bucket admin"),
    Request("s3:PutEncryptionConfiguration", f"arn:aws:s3:::{BUCKET}", {}, "bucket admin"),
    Request("s3:PutLifecycleConfiguration", f"arn:aws:s3:::{BUCKET}", {}, "bucket admin"),
    Request("s3:GetBucketVersioning", "arn:aws:s3:::other-bucket", {}, "other bucket"),
    Request("ssm:GetParameters", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/atp/staging/x", {},
            "another prefix"),
    Request("ssm:GetParametersByPath", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/atp/prod/"
            "backend", {}, "not used"),
    Request("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{PREFIX}env/X", {},
            "write"),
    Request("kms:Decrypt", KEY_ARN, {}, "direct decrypt"),
    Request("kms:Encrypt", KEY_ARN, VIA_S3, "encrypt"),
    Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/other", VIA_S3, "other key"),
    Request("ec2:DescribeInstances", "*", {"aws:RequestedRegion": "us-east-1"}, "other region"),
    Request("ec2:StopInstances", INSTANCE_ARN, {}, "instance admin"),
]


@pytest.mark.parametrize("request_", DENIED, ids=lambda r: f"{r.action}:{r.why}")
def test_nothing_broader_is_allowed(request_: Request):
    assert not allowed(operator(), request_)


def test_plain_http_is_denied_by_the_bucket_policy():
    request = Request("s3:GetObject", OBJECT_ARN, {"aws:SecureTransport": "false"}, "http")
    assert not allowed(operator(), request)
    request.context["aws:SecureTransport"] = "true"
    assert allowed(operator(), request)


@pytest.mark.parametrize(("operator_", "present", "absent"), [
    ("StringEquals", False, False), ("StringNotEquals", True, True),
    ("StringEqualsIfExists", False, True), ("StringNotEqualsIfExists", True, True),
    ("StringLike", False, False), ("StringNotLike", True, True),
    ("ArnNotEquals", True, True), ("Bool", False, False), ("BoolIfExists", False, True),
])
def test_the_evaluator_treats_absent_keys_as_aws_does(operator_, present, absent):
    """present: the key is in the request with another value; absent: not in the request."""
    assert _condition_holds(operator_, "k", "wanted", {"k": "other"}) is present
    assert _condition_holds(operator_, "k", "wanted", {}) is absent
    assert _condition_holds("Null", "k", "true", {}) and not _condition_holds("Null", "k", "true",
                                                                              {"k": "x"})
    assert _condition_holds("Null", "k", "false", {"k": "x"}) and not _condition_holds(
        "Null", "k", "false", {})


def test_the_plugin_uploads_modules_without_sse_headers():
    """amazon.aws 10.x: the controller's upload (module payloads, env values included) carries no
    SSE header whatever ansible_aws_ssm_bucket_sse_mode says; only the instance's presigned PUT
    does. The bucket's default SSE-KMS is what encrypts the uploads, and the bucket policy must
    let a header-less upload through."""
    text = (AMAZON_AWS / "plugins/plugin_utils/ssm/filetransfermanager.py").read_text()
    assert "upload_fileobj(data, self.bucket_name, s3_path, ExtraArgs=put_args)" in text
    assert plugin_put_context("put") == ()
    assert dict(plugin_put_context("get")) == {
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": KEY_ARN}


SSE = "s3:x-amz-server-side-encryption"
SSE_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
ALLOW_ALL_S3 = {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@pytest.mark.parametrize(("headers", "verdict"), [
    ({}, True),  # the controller's upload and multipart UploadPart: bucket default SSE-KMS
    ({SSE: "aws:kms", SSE_KEY: KEY_ARN}, True),  # the instance's presigned PUT
    ({SSE: "AES256"}, False),
    ({SSE: "aws:kms:dsse", SSE_KEY: KEY_ARN}, False),
    ({SSE: "aws:kms"}, False),  # no key named: S3 would use the AWS managed key aws/s3
    ({SSE: "aws:kms", SSE_KEY: f"arn:aws:kms:{REGION}:{ACCOUNT}:key/other"}, False),
], ids=["no-headers", "kms-project-key", "AES256", "dsse", "kms-no-key", "kms-other-key"])
def test_the_bucket_policy_denies_only_explicit_other_encryption(headers, verdict):
    request = Request("s3:PutObject", OBJECT_ARN,
                      {"aws:SecureTransport": "true", **headers}, "upload")
    assert allowed([ALLOW_ALL_S3, load("transfer-bucket-policy.json")], request) is verdict
    assert allowed(operator(), request) is verdict


def test_instance_role_is_session_manager_only():
    """Transfers use presigned URLs signed by the operator: the instance needs no S3 or KMS
    permission; env values are read on the controller: no Parameter Store either."""
    policy = load("instance-role-policy.json")
    actions = {a for s in policy["Statement"] for a in _as_list(s["Action"])}
    assert actions == {"ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
                       "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
                       "ssmmessages:OpenDataChannel"}
    assert allowed([policy], Request("ssm:UpdateInstanceInformation", INSTANCE_ARN))
    assert not allowed([policy], Request("s3:GetObject", OBJECT_ARN))
    assert not allowed([policy], Request("kms:Decrypt", KEY_ARN, VIA_S3))


def test_bucket_lifecycle_expires_everything_after_a_day():
    rules = load("transfer-bucket-lifecycle.json")["Rules"]
    assert len(rules) == 1 and rules[0]["Status"] == "Enabled"
    assert rules[0]["Filter"] == {"Prefix": ""}
    assert rules[0]["Expiration"] == {"Days": 1}
    assert rules[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rules[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}


def test_bucket_default_encryption_is_the_project_key():
    rule = load("transfer-bucket-encryption.json")["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                          "KMSMasterKeyID": KEY_ARN}


@pytest.fixture(scope="module")
def moto_s3():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    session = boto3.session.Session(aws_access_key_id="AKIAUNITTEST0000000",
                                    aws_secret_access_key="x", region_name=REGION)
    yield session.client("s3", endpoint_url=f"http://{host}:{port}")
    server.stop()


def test_the_bucket_documents_are_accepted_by_the_s3_api(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    moto_s3.put_bucket_lifecycle_configuration(
        Bucket=BUCKET, LifecycleConfiguration=load("transfer-bucket-lifecycle.json"))
    moto_s3.put_bucket_encryption(
        Bucket=BUCKET, ServerSideEncryptionConfiguration=load("transfer-bucket-encryption.json"))
    moto_s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(load("transfer-bucket-policy.json")))
    rules = moto_s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rules[0]["Expiration"] == {"Days": 1}
    assert "Status" not in moto_s3.get_bucket_versioning(Bucket=BUCKET)  # versioning never on


def test_the_lifecycle_document_satisfies_the_versioning_check():
    """A bucket where versioning was turned on is still accepted once the rule is applied."""
    from ansible_collections.atp.deploy.plugins.module_utils import transfer_bucket as tb

    rules = load("transfer-bucket-lifecycle.json")["Rules"]
    assert tb.versioning_problem(BUCKET, "Enabled", rules, f"{INSTANCE}/") is None
    assert tb.versioning_problem(BUCKET, "Enabled", [], f"{INSTANCE}/")
