# Copyright: (c) 2025, ATP deploy
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for atp.deploy.env_parameters: env values from SSM Parameter Store, on the controller.

Runs entirely on the controller (no SSM session, nothing on the instance): one GetParameters
call per 10 names, with the operator's credentials as the amazon.aws.aws_ssm connection of the
host resolves them (profile, region, keys), or with explicit region/profile/endpoint_url.

A successful result carries the values, so it marks itself no_log (``_ansible_no_log``); a
failure is NOT censored and names the parameters, never a value.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.atp.deploy.plugins.module_utils import env_parameters as layout

ARGUMENT_SPEC = {
    "prefix": {"type": "str", "required": True},
    "parameters": {"type": "dict", "required": True},
    "region": {"type": "str"},
    "profile": {"type": "str"},
    "endpoint_url": {"type": "str"},
}


def _fail(msg: str) -> dict:
    return {"failed": True, "changed": False, "msg": msg}


def client_error_message(exc: Exception, names: list[str]) -> str:
    """One line for a botocore error while reading ``names`` (no value can be in it)."""
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code", type(exc).__name__)
    detail = (response.get("Error", {}).get("Message") or str(exc) or code).splitlines()[0]
    if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
        return (f"Parameter Store: access denied reading {', '.join(names)} ({code}: {detail}): "
                "the operator needs ssm:GetParameters on the prefix and kms:Decrypt on its key "
                "(files/iam/operator-policy.json)")
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return ("Parameter Store: no AWS credentials on the controller: set AWS_PROFILE (or "
                "ansible_aws_ssm_profile) to the operator's profile")
    if type(exc).__name__ == "EndpointConnectionError":
        return f"Parameter Store unreachable ({detail}): check the region and the network"
    return f"Parameter Store: GetParameters failed for {', '.join(names)}: {code}: {detail}"


class ActionModule(ActionBase):
    """Read the env values; never opens a session to the host."""

    TRANSFERS_FILES = False
    _supports_check_mode = True

    def _ssm_client(self, args: dict):
        connection = self._connection
        if (not any(args.get(k) for k in ("region", "profile", "endpoint_url"))
                and hasattr(connection, "_get_boto_client")):
            # exactly the credentials and endpoint the aws_ssm connection uses for this host
            return connection._get_boto_client("ssm",
                                               region_name=connection.get_option("region"))
        import boto3

        session = boto3.session.Session(profile_name=args.get("profile") or None,
                                        region_name=args.get("region") or None)
        return session.client("ssm", endpoint_url=args.get("endpoint_url") or None)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            return {**result, **_fail("env_parameters: " + "; ".join(validation.error_messages))}
        args = validation.validated_parameters
        try:
            prefix = layout.normalise_prefix(args["prefix"])
            entries = layout.plan(prefix, args["parameters"])
        except layout.ParameterError as exc:
            return {**result, **_fail(str(exc))}
        names = [name for _file, _var, name in entries]
        found: dict[str, str] = {}
        types: dict[str, str] = {}
        if names:
            try:
                client = self._ssm_client(args)
                for batch in layout.batches(names):
                    answer = client.get_parameters(Names=batch, WithDecryption=True)
                    for item in answer.get("Parameters", []):
                        found[item["Name"]] = item["Value"]
                        types[item["Name"]] = item.get("Type", "SecureString")
            except Exception as exc:  # botocore errors; one line naming the parameters
                if type(exc).__module__.split(".", maxsplit=1)[0] not in ("botocore", "boto3"):
                    raise
                return {**result, **_fail(client_error_message(exc, names))}
        try:
            env = layout.assemble(prefix, entries, found, types)
        except layout.ParameterError as exc:
            return {**result, **_fail(str(exc))}
        result.update(changed=False, env=env, parameters=names, prefix=prefix,
                      _ansible_no_log=True)
        return result
