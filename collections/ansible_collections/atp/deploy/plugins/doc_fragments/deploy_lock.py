# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Doc fragment: the deploy lock options (module_utils/deploy_lock.py).

``atp.deploy.deploy_lock`` documents ``lock_token`` and ``lock_file`` for the modules that check
and renew the run's lock before they change anything; ``atp.deploy.deploy_lock.lock_file``
documents ``lock_file`` alone (modules that take the lock or show it instead). Each section is
a plain string (ansible-test's yamllint reads them as literals): an option in two sections is
written the same in both (tests/unit/docs/test_doc_fragments.py checks it).
"""

from __future__ import annotations


class ModuleDocFragment:
    """Deploy lock options shared by the modules that run under the lock."""

    DOCUMENTATION = r"""
options:
  lock_token:
    description:
      - This run's deploy lock token (RV(atp.deploy.release_state#module:lock.token)). When set,
        the call first checks that the run still holds the deploy lock and renews its expiry;
        when the lock is gone or held by another run it fails at once with C(lock_lost=true),
        changing nothing.
      - Empty (the default, and in check mode) skips the check.
    type: str
    default: ""
  lock_file:
    description: The deploy lock file; defaults to C(<app_root>/.deploy.lock).
    type: path
"""

    LOCK_FILE = r"""
options:
  lock_file:
    description: The deploy lock file; defaults to C(<app_root>/.deploy.lock).
    type: path
"""
