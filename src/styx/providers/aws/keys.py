"""The user's SSH key (:mod:`styx.providers.vm_ssh`) as an EC2 key pair in each region.

The key is imported into each region as ``styx-key-<user>-<hash>``, where the hash is
of the public key, so a new key never collides with an old key pair of the same user, and
importing is idempotent: an existing pair of that name is the same key. The key pair is kept
when clusters are torn down.
"""

from __future__ import annotations

import getpass
import hashlib
import re
from pathlib import Path
from typing import Any

from styx.providers.aws.errors import error_code, translated
from styx.providers.vm_ssh import ensure_local_key, private_key_path

__all__ = ["ensure_key_pair", "ensure_local_key", "key_pair_name", "private_key_path"]


def key_pair_name(public_key: str) -> str:
    """``styx-key-<user>-<8 hex of the public key's hash>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    user = re.sub(r"[^a-z0-9]", "", user.lower())[:16] or "user"
    body = " ".join(public_key.split()[:2])  # the comment is not part of the key
    return f"styx-key-{user}-{hashlib.sha256(body.encode()).hexdigest()[:8]}"


def ensure_key_pair(ec2: Any, region: str) -> tuple[str, Path]:
    """The name of this user's key pair in ``region`` (imported if missing) and the private
    key's path. One API call: an import answered "duplicate" means the pair is there."""
    key, public = ensure_local_key()
    name = key_pair_name(public)
    with translated(region, action="importing the SSH key pair"):
        try:
            ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public.encode())
        except Exception as exc:
            if error_code(exc) != "InvalidKeyPair.Duplicate":
                raise
    return name, key
