"""SSH connections for ``ssh://`` / ``sftp://`` URLs, checked like OpenSSH's own client.

:func:`open_sftp_fs` returns a connected fsspec SFTP filesystem using the credentials a user
already has (ssh-agent, ``~/.ssh/id_*``, ``~/.ssh/config``), refusing unknown or changed host
keys as ``ssh`` does, with timeouts so a dead server raises instead of hanging, and one lock
around the SFTP channel (paramiko's SFTPClient is not thread-safe). Every failure is an
:class:`SSHError` with a one-line message that never contains a password.

paramiko and fsspec are imported only when a connection is opened.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import socket
import threading
import types
import weakref
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

DEFAULT_TIMEOUT = 10.0  # s: TCP connect, SSH banner, authentication
DEFAULT_OP_TIMEOUT = 30.0  # s: one SFTP request once connected
OPTIONS = frozenset({"key_filename", "password", "passphrase", "timeout", "op_timeout",
                     "known_hosts", "host_key_policy", "port", "username",
                     "skip_instance_cache"})
DEFAULT_KEYS = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")  # what paramiko looks for


class SSHError(Exception):
    """Why an SSH connection failed: one user-facing line, never a password."""


class SSHURL(NamedTuple):
    """The parts of an ``ssh://`` URL; ``path`` is absolute, or ``~``-relative."""

    host: str
    port: int | None
    user: str | None
    path: str
    password: str | None = None

    def __repr__(self) -> str:
        pw = ", password='***'" if self.password else ""
        return f"SSHURL(host={self.host!r}, port={self.port}, user={self.user!r}, " \
               f"path={self.path!r}{pw})"


def sftp_kwargs_from_url(url: str) -> SSHURL:
    """Split ``ssh://[user[:password]@]host[:port]/path`` (or ``sftp://``). ``/~/dir`` gives
    ``~/dir`` (home-relative, see ``expand_home``), an empty path ``/``."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    shown = f"{parts.scheme}://{(unquote(parts.username) + '@') if parts.username else ''}" \
            f"{parts.netloc.rpartition('@')[2]}{parts.path}"
    if parts.scheme.lower() not in ("ssh", "sftp") or not host:
        raise SSHError(f"{shown}: not an ssh://[user@]host[:port]/path URL")
    path = unquote(parts.path) or "/"
    if path == "/~" or path.startswith("/~/"):
        path = path[1:]
    return SSHURL(host, port, unquote(parts.username) if parts.username else None, path,
                  unquote(parts.password) if parts.password is not None else None)


@dataclass
class _Target:
    """Everything needed to connect, resolved from the URL, options and ~/.ssh/config."""

    alias: str  # the host as the user wrote it (maybe a ~/.ssh/config alias)
    host: str
    port: int
    user: str
    timeout: float
    op_timeout: float
    known_hosts: list[str]  # existing files to trust
    write_to: str | None  # where accept-new records a key; None: unknown keys are refused
    keys: list[str]
    password: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    proxy: str | None = None

    @property
    def label(self) -> str:
        alias = f"[{self.alias}]" if ":" in self.alias else self.alias
        return f"ssh://{alias}" + (f":{self.port}" if self.port != 22 else "")

    def known_name(self) -> str:  # how known_hosts names the server (as paramiko looks it up)
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def _tilde(path: str) -> str:
    home = os.path.expanduser("~").rstrip("/")
    return "~" + path[len(home):] if path.startswith(home + "/") else path


def _paths(value: Any, split: bool = False) -> list[str]:
    """Expanded paths from a str (whitespace-separated when ``split``) or a list."""
    if isinstance(value, str):
        value = value.split() if split else [value]
    items = list(value or [])
    return [os.path.expanduser(str(p)) for p in items if str(p).lower() != "none"]


def _resolve(host: str, port: int | None, username: str | None, opts: dict) -> _Target:
    import paramiko

    unknown = sorted(set(opts) - OPTIONS)
    if unknown:
        raise SSHError(f"unknown ssh option {unknown[0]!r} (known: {', '.join(sorted(OPTIONS))})")
    cfg: dict[str, Any] = {}
    cfg_path = os.path.expanduser("~/.ssh/config")
    if os.path.isfile(cfg_path):
        try:
            cfg = dict(paramiko.SSHConfig.from_path(cfg_path).lookup(host))
        except Exception as e:
            raise SSHError(f"~/.ssh/config: cannot use it ({type(e).__name__}: {e})") from e
    try:
        port = int(port or opts.get("port") or cfg.get("port") or 22)
        timeout = float(opts.get("timeout") or cfg.get("connecttimeout") or DEFAULT_TIMEOUT)
        op_timeout = float(opts.get("op_timeout") or DEFAULT_OP_TIMEOUT)
    except ValueError as e:
        raise SSHError(f"ssh://{host}: bad port or timeout ({e})") from None
    user = username or opts.get("username") or cfg.get("user")
    if not user:
        try:
            user = getpass.getuser()
        except Exception:  # no login name (e.g. a container without a passwd entry)
            raise SSHError(f"ssh://{host}: no user name: write ssh://USER@{host}/…") from None
    keys = _paths(opts.get("key_filename"))
    for k in keys:
        if not os.path.isfile(k):
            raise SSHError(f"key_filename {k}: no such file")
    keys += [k for k in _paths(cfg.get("identityfile")) if os.path.isfile(k) and k not in keys]
    files = _paths(opts.get("known_hosts")) + _paths(
        cfg.get("userknownhostsfile") or "~/.ssh/known_hosts ~/.ssh/known_hosts2", True) \
        + _paths(cfg.get("globalknownhostsfile")
                 or "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2", True)
    policy = str(opts.get("host_key_policy") or "strict")
    if cfg.get("stricthostkeychecking") == "accept-new" and "host_key_policy" not in opts:
        policy = "accept-new"  # the user's own choice for this host in ~/.ssh/config
    if policy not in ("strict", "accept-new"):
        raise SSHError(f"host_key_policy={policy!r}: use 'strict' (the default) or 'accept-new'")
    write_to = (files or [None])[0] if policy == "accept-new" else None
    hostname = str(cfg.get("hostname") or host)
    proxy = cfg.get("proxycommand")
    jump = str(cfg.get("proxyjump") or "none")
    if jump.lower() != "none" and not proxy:  # ProxyJump is ssh -W through the last hop
        *via, last = jump.split(",")
        dest = "ssh://" + last if last.count(":") == 1 and "://" not in last else last
        proxy = shlex.join(["ssh", "-W", f"[{hostname}]:{port}" if ":" in hostname
                            else f"{hostname}:{port}"]
                           + (["-J", ",".join(via)] if via else []) + [dest])
    return _Target(host, hostname, port, str(user), timeout, op_timeout,
                   [f for f in files if os.path.isfile(f)], write_to, keys,
                   opts.get("password"), opts.get("passphrase"),
                   proxy if proxy and str(proxy).lower() != "none" else None)


class _HostKeyPolicy:
    """paramiko's missing-host-key hook: refuse (as ``ssh`` does), or record with accept-new."""

    def __init__(self, t: _Target) -> None:
        self.t = t

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        t = self.t
        if t.write_to:
            os.makedirs(os.path.dirname(t.write_to) or ".", mode=0o700, exist_ok=True)
            with open(t.write_to, "a", encoding="utf-8") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            return
        p = f"-p {t.port} " if t.port != 22 else ""
        raise SSHError(
            f"{t.label}: unknown host key ({key.get_name()} {key.fingerprint}); nanochat-ckpt "
            f"checks ~/.ssh/known_hosts as ssh does: connect once with 'ssh {p}{t.user}@"
            f"{t.alias}' and accept it, or add it with 'ssh-keyscan {p}{t.host} >> "
            "~/.ssh/known_hosts' (after checking the fingerprint)")


def _explain(e: BaseException, t: _Target) -> str:
    """A one-line reason for a failed ``SSHClient.connect``."""
    import paramiko

    where = f"{t.host}:{t.port}"
    if isinstance(e, paramiko.BadHostKeyException):
        return (f"{t.label}: HOST KEY CHANGED: the server sent {e.key.get_name()} "
                f"{e.key.fingerprint}, known_hosts has {e.expected_key.fingerprint}; possible "
                "man-in-the-middle; if the server was reinstalled remove the old key with "
                f"ssh-keygen -R '{t.known_name()}'")
    if isinstance(e, paramiko.PasswordRequiredException):
        return (f"{t.label}: a private key is passphrase-protected: load it into ssh-agent "
                "(ssh-add) or pass -o passphrase=…")
    if isinstance(e, paramiko.AuthenticationException) \
            or "No authentication methods" in str(e):  # no key, agent or password at all
        home = os.path.expanduser("~/.ssh")
        found = [f"~/.ssh/{k}" for k in DEFAULT_KEYS if os.path.isfile(f"{home}/{k}")]
        tried = ["ssh-agent" if os.environ.get("SSH_AUTH_SOCK") else "no ssh-agent",
                 f"default keys ({', '.join(found) or 'none in ~/.ssh'})"]
        tried += [_tilde(k) for k in t.keys] + (["password"] if t.password else [])
        allowed = getattr(e, "allowed_types", None)
        only = f" (the server accepts: {', '.join(allowed)})" if allowed else ""
        return (f"{t.label}: authentication refused for {t.user}@{t.host}{only}: tried "
                f"{', '.join(tried)}; pass -o key_filename=PATH (or ssh-add the key)")
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
        first = next(iter(e.errors.values()), None)
        return f"cannot connect to {where} ({getattr(first, 'strerror', None) or first})"
    if isinstance(e, socket.gaierror):
        return f"{t.label}: cannot resolve host name {t.host!r} ({e.strerror})"
    if isinstance(e, TimeoutError):
        return f"cannot connect to {where}: no answer within {t.timeout:g} s"
    if isinstance(e, OSError):
        return f"cannot connect to {where} ({e.strerror or e})"
    if isinstance(e, (paramiko.SSHException, EOFError)) and any(
            m in str(e) for m in ("banner", "No existing session", "Negotiation")):
        return (f"{where} accepted the connection but did not answer as an SSH server "
                f"within {t.timeout:g} s")
    return f"{t.label}: SSH connection failed ({type(e).__name__}: {e})".splitlines()[0]


def _open_client(t: _Target) -> tuple[Any, Any]:
    """A connected (paramiko SSHClient, SFTPClient) pair, or :class:`SSHError`."""
    import paramiko

    client = paramiko.SSHClient()
    for f in t.known_hosts:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            client.load_system_host_keys(f)
    client.set_missing_host_key_policy(_HostKeyPolicy(t))
    try:
        client.connect(t.host, t.port, t.user, password=t.password, passphrase=t.passphrase,
                       key_filename=t.keys or None, allow_agent=True, look_for_keys=True,
                       timeout=t.timeout, banner_timeout=t.timeout, auth_timeout=t.timeout,
                       channel_timeout=t.timeout,
                       sock=paramiko.ProxyCommand(t.proxy) if t.proxy else None)
    except SSHError:
        client.close()
        raise
    except Exception as e:
        client.close()
        raise SSHError(_explain(e, t)) from e
    try:
        sftp = client.open_sftp()
    except Exception as e:
        client.close()
        raise SSHError(f"{t.label}: the server offers no SFTP ({type(e).__name__}: {e}); its "
                       "sshd_config needs a 'Subsystem sftp' line") from e
    sftp.get_channel().settimeout(t.op_timeout)
    return client, sftp


class _Locked:
    """A proxy holding one lock around every call into a paramiko SFTP client or file:
    generators are drained and opened files wrapped while the lock is held."""

    def __init__(self, obj: Any, lock: threading.RLock, t: _Target,
                 reconnect: Any = None) -> None:
        self._obj, self._lock, self._t, self._reconnect = obj, lock, t, reconnect

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                if self._reconnect is not None and self._obj.sock.closed:
                    self._obj = self._reconnect()  # the server dropped us, or a timeout did
                try:
                    out = getattr(self._obj, name)(*args, **kwargs)
                    if isinstance(out, types.GeneratorType):
                        out = list(out)
                except TimeoutError as e:
                    with contextlib.suppress(Exception):
                        (self._obj if self._reconnect else self._obj.sftp).sock.close()
                    raise TimeoutError(f"{self._t.label}: no reply within "
                                       f"{self._t.op_timeout:g} s (op_timeout)") from e
            return _LockedFile(out, self._lock, self._t) if name == "open" else out
        return call


class _LockedFile(_Locked):
    def __enter__(self) -> _LockedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fs_class() -> type:
    from fsspec.implementations.sftp import SFTPFileSystem

    class LockedSFTPFileSystem(SFTPFileSystem):
        """fsspec's SFTP filesystem, connected by :func:`open_sftp_fs`: all SFTP requests
        go through one lock; ``ls`` follows symlinks (a linked tag dir is a directory)."""

        def _connect(self) -> None:  # called by SFTPFileSystem.__init__
            t: _Target = self.ssh_kwargs["target"]
            self._lock = getattr(self, "_lock", None) or threading.RLock()
            self.client, sftp = _open_client(t)
            self._holder = [self.client]  # the finalizer closes the current client
            weakref.finalize(self, lambda h: h[0].close(), self._holder)
            self.ftp = _Locked(sftp, self._lock, t, self._reopen)

        def _reopen(self) -> Any:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client, sftp = _open_client(self.ssh_kwargs["target"])
            self._holder[0] = self.client
            return sftp

        def ls(self, path: str, detail: bool = False) -> list:
            path = self._strip_protocol(path)
            try:
                stats = self.ftp.listdir_iter(path)
            except TimeoutError:
                raise
            except OSError:
                info = self.info(path)  # a file lists as itself, as elsewhere in fsspec
                if info["type"] == "directory":
                    raise
                return [info] if detail else [path]
            out = []
            for st in stats:
                info = self._decode_stat(st, path)
                if info["type"] == "link":
                    info["islink"] = True
                    with contextlib.suppress(OSError):  # a dangling link stays "link"
                        info.update(self.info(info["name"]), name=info["name"])
                out.append(info)
            return out if detail else sorted(i["name"] for i in out)

        def expand_home(self, path: str) -> str:
            """``~`` / ``~/dir`` as an absolute path on the server (from its login dir)."""
            if path == "~" or path.startswith("~/"):
                return self.ftp.normalize(".").rstrip("/") + path[1:]
            return path

        def close(self) -> None:
            self.client.close()

    return LockedSFTPFileSystem


_FS_CLASS: type | None = None


def open_sftp_fs(host: str, port: int | None, username: str | None,
                 options: dict | None = None) -> Any:
    """A connected fsspec SFTP filesystem for ``host`` (a name, an address or a
    ``~/.ssh/config`` alias). Raises :class:`SSHError`. ``options``: key_filename, password,
    passphrase, timeout, op_timeout, known_hosts, host_key_policy ('accept-new'), port,
    username; URL parts and options win over ~/.ssh/config."""
    global _FS_CLASS
    try:
        import fsspec.implementations.sftp  # noqa: F401  (imports paramiko)
    except ImportError:
        raise SSHError("ssh:// URLs need the paramiko package: pip install paramiko "
                       "(or pip install 'nanochat-ckpt[ssh]')") from None
    target = _resolve(host, port, username, dict(options or {}))
    _FS_CLASS = _FS_CLASS or _fs_class()
    return _FS_CLASS(target.host, target=target, skip_instance_cache=True)
