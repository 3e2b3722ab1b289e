"""tools/atp_ops/portforward/common.py: redaction, port validation, bind rules, run()."""

from __future__ import annotations

import sys

import pytest
from atp_ops.portforward import common


@pytest.mark.parametrize(("ip", "blocks"), [
    ("127.0.0.1", True), ("0.0.0.0", True), ("::", True), ("::ffff:127.0.0.1", True),
    ("::ffff:0.0.0.0", True), ("*", True), ("127.0.0.2", False), ("::1", False),
    ("10.0.0.5", False), ("127.0.0.1%lo", True), ("not-an-ip", False),
])
def test_blocks_bind(ip, blocks):
    assert common.blocks_bind(ip) is blocks


def test_validate_port():
    common.validate_port("--local-port", 1)
    common.validate_port("--local-port", 65535)
    for bad in (0, 65536, -1):
        with pytest.raises(common.PortForwardError, match="--local-port between 1 and 65535"):
            common.validate_port("--local-port", bad)


def test_redact_and_short():
    text = ('{"SessionId": "s", "TokenValue": "abc", "SecretAccessKey": "xyz", '
            '"key": "AKIAABCDEFGHIJKLMNOP"}')
    red = common.redact(text)
    assert "abc" not in red and "xyz" not in red and "AKIAABCDEFGHIJKLMNOP" not in red
    assert '"SessionId": "s"' in red
    assert common.short("a\n  b\tc") == "a b c"
    assert common.short("x" * 300, 20) == "x" * 17 + "..."


def test_error_carries_its_exit_code():
    assert common.PortForwardError("x").code == common.EXIT_FAIL == 1
    assert common.PortForwardError("x", 130).code == 130
    assert common.EXIT_NOT_RUNNING == 3


def test_run_captures_and_bounds():
    done = common.run([sys.executable, "-c", "print('hi')"], timeout=30)
    assert done.returncode == 0 and done.stdout == "hi\n"
    assert common.run(["/nonexistent/tool"], timeout=5) is None
    assert common.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2) is None
