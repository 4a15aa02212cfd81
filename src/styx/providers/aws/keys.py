"""The user's SSH key for AWS clusters, and its EC2 key pair in each region.

The private key is ``$STYX_HOME/ssh/styx-key`` (ed25519, mode 0600), made with ``ssh-keygen``
on first use. It is imported into each region as ``styx-key-<user>-<hash>``, where the hash is
of the public key, so a new key never collides with an old key pair of the same user, and
importing is idempotent: an existing pair of that name is the same key. The key pair is kept
when clusters are torn down.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

from styx import paths
from styx.errors import StyxError
from styx.providers.aws.errors import error_code, translated

KEY_FILE = "styx-key"
_lock = threading.Lock()


def private_key_path() -> Path:
    """Where the private key lives (it may not exist yet)."""
    return paths.home() / "ssh" / KEY_FILE


def ensure_local_key() -> tuple[Path, str]:
    """The private key's path and the public key's text, generating the pair if missing."""
    key = private_key_path()
    pub = key.with_name(KEY_FILE + ".pub")
    with _lock:
        if not key.exists():
            key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            pub.unlink(missing_ok=True)
            try:
                proc = subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "styx", "-f", str(key)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
            except FileNotFoundError as e:
                raise StyxError(
                    "ssh-keygen is not installed, so Styx cannot make its SSH key.",
                    "Install OpenSSH (openssh-client).",
                    code="ssh-keygen-missing",
                ) from e
            if proc.returncode != 0:
                raise StyxError(
                    f"ssh-keygen failed: {proc.stderr.strip() or proc.returncode}.",
                    f"Check that {key.parent} is writable.",
                    code="ssh-keygen-failed",
                )
        os.chmod(key, 0o600)
        if not pub.exists():
            out = subprocess.run(
                ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
            )
            pub.write_text(out.stdout)
        return key, pub.read_text().strip()


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
