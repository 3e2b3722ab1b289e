# Copyright: atp.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Doc fragment: where the backend lives on the instance (app root, compose service, image).

``atp.deploy.backend`` documents all three options; ``atp.deploy.backend.app_root``,
``atp.deploy.backend.service`` and ``atp.deploy.backend.image_repo`` document one each, for
modules that take only some of them. A module whose option means something else (another
default, another description) documents it itself. Each section is a plain string (ansible-test's
yamllint reads them as literals): an option in two sections is written the same in both
(tests/unit/docs/test_doc_fragments.py checks it).
"""

from __future__ import annotations


class ModuleDocFragment:
    """The backend's app root, compose service and image repository."""

    DOCUMENTATION = r"""
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current).
    type: path
    default: /home/ubuntu/automated-trading-platform
  service:
    description: Compose service of the backend.
    type: str
    default: backend-aws
  image_repo:
    description: Image repository; the release image is C(<image_repo>:<release_id>).
    type: str
    default: automated-trading-platform-backend-aws
"""

    APP_ROOT = r"""
options:
  app_root:
    description: Directory holding C(releases/), C(shared/), C(current).
    type: path
    default: /home/ubuntu/automated-trading-platform
"""

    SERVICE = r"""
options:
  service:
    description: Compose service of the backend.
    type: str
    default: backend-aws
"""

    IMAGE_REPO = r"""
options:
  image_repo:
    description: Image repository; the release image is C(<image_repo>:<release_id>).
    type: str
    default: automated-trading-platform-backend-aws
"""
