"""Official weights by name or URL, downloaded once into a local cache (standard library + tqdm only).

A weights *spec* (``model.backbone.pretrained`` of a config, the CHECKPOINT of tools/eval.py) is one of

* a local path, used as it is;
* an ``http(s)://`` URL, downloaded into ``$SEGNEXT_HOME/checkpoints/<URL basename>``
  (``$SEGNEXT_HOME`` defaults to ``~/.cache/segnext_jt``);
* ``zoo:NAME``, a name of `ZOO` (the URLs mmseg's SegNeXt configs and model zoo use).

`resolve` turns a spec into a local file. A file already in the cache whose content matches the hash
prefix in its name is used without touching the network. Downloads follow torch.hub's convention
(``download_url_to_file`` / ``check_hash``): the hex digits after the last dash of ``name-<hex>.pth``
are a prefix of the file's sha256. The download goes to ``<name>.partial`` under an exclusive lock
(``<name>.lock``: two processes never write the same file; the second waits and then finds the file
cached), is resumed with an HTTP Range request when a partial file is there (restarted from zero
when the server ignores the range or answers with another one, or when the resumed file fails its
hash), and is renamed over the final name only once its hash matched. Every failure (no network,
HTTP error, timeout, truncated body, bad hash) is one `HubError` line that names the URL, the cache
path where the file can be placed by hand, and what else the caller suggests (`hint`).

Environment: ``SEGNEXT_HOME`` (cache root), ``SEGNEXT_HUB_TIMEOUT`` (socket timeout in seconds,
default 60), ``SEGNEXT_OFFLINE=1`` (never download: use the cache or fail at once), and
``SEGNEXT_HUB_MIRROR`` (a base URL that replaces ``https://download.openmmlab.com/`` in official
URLs: for mirrors and for tests against a local server; the cache file name stays the same).
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from .errors import CheckpointNotFoundError

__all__ = ["ZOO", "OFFICIAL_LOGS", "ZOO_PREFIX", "FROM_SCRATCH_HINT", "HubError", "Resolved", "resolve", "download",
           "zoo_url", "cache_dir", "cached_path", "expected_hash_prefix", "is_remote"]

ENV_HOME = "SEGNEXT_HOME"
ENV_MIRROR = "SEGNEXT_HUB_MIRROR"
ENV_TIMEOUT = "SEGNEXT_HUB_TIMEOUT"
ENV_OFFLINE = "SEGNEXT_OFFLINE"
DEFAULT_TIMEOUT_S = 60.0
ZOO_PREFIX = "zoo:"
OFFICIAL_HOST = "https://download.openmmlab.com/"
FROM_SCRATCH_HINT = "or train from scratch on purpose with --cfg-options model.backbone.pretrained=null"

_MMSEG = OFFICIAL_HOST + "mmsegmentation/v0.5/"
_ADE_RUNS = {  # mmseg configs/segnext/metafile.yaml: the released ADE20K 160k models (1x16, 512x512)
    "t": "20230210_140244-05bd8466", "s": "20230214_113014-43013668",
    "b": "20230209_172053-b6f6c70c", "l": "20230209_172055-19b14b63",
}
_IMAGENET = {"t": "119e8c9f", "s": "f33ccdf2", "b": "3ab7d230", "l": "cef260d4"}


def _ade_url(size: str) -> str:
    run = f"segnext_mscan-{size}_1x16_512x512_adamw_160k_ade20k"
    return f"{_MMSEG}segnext/{run}/{run}_{_ADE_RUNS[size]}.pth"


# mscan_*: the ImageNet-1k MSCAN weights that mmseg's configs/segnext/*.py load (`checkpoint_file`);
# segnext_*: the ADE20K segmentation checkpoints of mmseg's SegNeXt model zoo (50.99 mIoU for L).
ZOO = {
    **{f"mscan_{s}": f"{_MMSEG}pretrain/segnext/mscan_{s}_20230227-{h}.pth" for s, h in _IMAGENET.items()},
    **{f"segnext_{s}": _ade_url(s) for s in _ADE_RUNS},
}



def _ade_log_url(size: str) -> str:
    run = f"segnext_mscan-{size}_1x16_512x512_adamw_160k_ade20k"
    return f"{_MMSEG}segnext/{run}/{run}_{_ADE_RUNS[size].split('-')[0]}.log.json"


# The training logs mmseg released with those ADE20K checkpoints (the "log" links of its
# configs/segnext/README.md). Their names carry no hash: segnext_jt/repro/report/official.py checks them.
OFFICIAL_LOGS = {f"segnext_{s}": _ade_log_url(s) for s in _ADE_RUNS}

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.")  # torch.hub's HASH_REGEX, at least 8 hex digits
_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)$")


class HubError(CheckpointNotFoundError):
    """The weights could not be had: unknown zoo name, no network, HTTP error, timeout, truncated
    or corrupt download. One line; the tools end with exit status 2."""


@dataclass(frozen=True)
class Resolved:
    """A weights spec made local: `path` to read, `url` it came from (None for a local path)."""

    spec: str
    path: str
    url: Optional[str] = None

    def describe(self) -> str:
        return self.path if self.url is None else f"{self.path} ({self.url})"


# ------------------------------------------------------------------------------------------------
# names, URLs and cache paths
# ------------------------------------------------------------------------------------------------
def is_remote(spec: str) -> bool:
    """True when `spec` is downloaded rather than read from the file system."""
    return spec.startswith((ZOO_PREFIX, "http://", "https://"))


def zoo_url(name: str) -> str:
    """The URL of a `ZOO` name (with or without ``zoo:``); `HubError` with the valid names if unknown."""
    key = name[len(ZOO_PREFIX):] if name.startswith(ZOO_PREFIX) else name
    if key in ZOO:
        return ZOO[key]
    close = difflib.get_close_matches(key, list(ZOO), n=1)
    guess = f"did you mean zoo:{close[0]}? " if close else ""
    raise HubError(f"unknown weights name zoo:{key}: {guess}valid names are "
                   f"{', '.join(ZOO_PREFIX + n for n in ZOO)}")


def _mirrored(url: str) -> str:
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if mirror and url.startswith(OFFICIAL_HOST):
        return mirror.rstrip("/") + "/" + url[len(OFFICIAL_HOST):]
    return url


def cache_dir() -> str:
    """Where downloaded weights live: ``$SEGNEXT_HOME/checkpoints`` (default ``~/.cache/segnext_jt``)."""
    home = os.environ.get(ENV_HOME, "").strip() or os.path.join("~", ".cache", "segnext_jt")
    return os.path.abspath(os.path.join(os.path.expanduser(home), "checkpoints"))


def _file_name(url: str) -> str:
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise HubError(f"{url}: the URL names no file (expected .../<name>.pth); give a URL that ends in a file name")
    return name


def cached_path(url: str) -> str:
    """The cache file for `url`: the cache dir joined with the URL's file name."""
    return os.path.join(cache_dir(), _file_name(url))


def expected_hash_prefix(file_name: str) -> Optional[str]:
    """The sha256 prefix that an official file name carries (``mscan_t_20230227-119e8c9f.pth`` ->
    ``119e8c9f``), or None when the name has none."""
    match = _HASH_IN_NAME.search(file_name)
    return match.group(1) if match else None


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _timeout(timeout: Optional[float]) -> float:
    if timeout is not None:
        return float(timeout)
    text = os.environ.get(ENV_TIMEOUT, "").strip()
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise HubError(f"{ENV_TIMEOUT}={text!r}: expected a number of seconds") from None
    if not value > 0:
        raise HubError(f"{ENV_TIMEOUT}={text!r}: expected a positive number of seconds")
    return value


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# resolving a spec
# ------------------------------------------------------------------------------------------------
def resolve(spec: str, what: str = "checkpoint", hint: str = "", timeout: Optional[float] = None,
            progress: bool = True, log: Callable[[str], None] = _stderr) -> Resolved:
    """A local file for `spec` (local path, http(s) URL or zoo:NAME), downloading it if needed.

    `what` names the setting in error messages (e.g. ``model.backbone.pretrained``); `hint` is
    appended to them (e.g. `FROM_SCRATCH_HINT`). Raises `HubError` or `CheckpointNotFoundError`."""
    spec = str(spec).strip()
    if not spec:
        raise CheckpointNotFoundError(f"{what}: empty value; expected a file, an http(s) URL or zoo:NAME")
    if spec.startswith(ZOO_PREFIX):
        url = _mirrored(zoo_url(spec))
    elif spec.startswith(("http://", "https://")):
        url = _mirrored(spec)
    else:
        path = os.path.abspath(os.path.expanduser(spec))
        if not os.path.isfile(path):
            state = "is not a regular file" if os.path.exists(path) else "file not found"
            tail = f"; {hint}" if hint else ""
            raise CheckpointNotFoundError(f"{what} {spec}: {state} (expected a file, an http(s) URL or "
                                          f"zoo:NAME, names: {', '.join(ZOO)}){tail}")
        return Resolved(spec, path)
    return Resolved(spec, download(url, hint=hint, timeout=timeout, progress=progress, log=log), url)


def download(url: str, hint: str = "", timeout: Optional[float] = None, progress: bool = True,
             log: Callable[[str], None] = _stderr) -> str:
    """`url`'s file in the cache, downloaded (or resumed) and hash-checked if it is not there yet."""
    final = cached_path(url)
    prefix = expected_hash_prefix(os.path.basename(final))

    def failure(reason: str) -> HubError:
        tail = f", {hint}" if hint else ""
        return HubError(f"cannot download {url}: {reason}. Download it by other means and place it at "
                        f"{final}{tail}")

    if os.path.isfile(final):
        if _hash_matches(final, prefix):
            return final  # the cache hit: no network
        missing = f"the cached file's sha256 does not start with {prefix}, the hash in its name"
    else:
        missing = "the file is not in the cache"
    if os.environ.get(ENV_OFFLINE, "") not in ("", "0"):
        raise failure(f"{ENV_OFFLINE}={os.environ[ENV_OFFLINE]} forbids downloading and {missing}")
    seconds = _timeout(timeout)
    try:
        os.makedirs(os.path.dirname(final), exist_ok=True)
        with _exclusive(final + ".lock", log):
            if os.path.isfile(final):  # another process may have finished it while we waited
                if _hash_matches(final, prefix):
                    return final
                bad = final + ".bad-hash"
                os.replace(final, bad)
                log(f"warning: {final}: its sha256 does not start with {prefix} (the hash in its name); "
                    f"moved it to {bad} and downloading it again")
            _fetch_verified(url, final, prefix, seconds, progress, log, failure)
    except HubError:
        raise
    except OSError as exc:  # the cache directory itself: permissions, a full disk, ...
        where = f" ({exc.filename})" if exc.filename else ""
        raise failure(f"{exc.strerror or exc}{where}") from None
    return final


def _hash_matches(path: str, prefix: Optional[str]) -> bool:
    return prefix is None or file_sha256(path).startswith(prefix)


@contextlib.contextmanager
def _exclusive(lock_path: str, log: Callable[[str], None]) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (waiting, with one message, while another process
    downloads the same file). No locking where fcntl does not exist."""
    try:
        import fcntl  # noqa: F401  (POSIX only)
    except ImportError:
        yield
        return
    from .files import lock_holder, try_lock, unlock
    fd = try_lock(lock_path)
    if fd is None:
        log(f"waiting for {lock_holder(lock_path)}, which is downloading {lock_path[:-len('.lock')]}")
        while fd is None:
            time.sleep(0.5)
            fd = try_lock(lock_path)
    try:
        yield
    finally:
        unlock(fd)


# ------------------------------------------------------------------------------------------------
# the transfer
# ------------------------------------------------------------------------------------------------
def _fetch_verified(url: str, final: str, prefix: Optional[str], timeout: float, progress: bool,
                    log: Callable[[str], None], failure: Callable[[str], HubError]) -> None:
    """Download into ``<final>.partial`` (resuming it if present), check the hash, rename over `final`.
    A resumed file that fails the hash is downloaded once more from zero (its first part may belong
    to another version of the file); a bad hash is never kept under any name."""
    partial = final + ".partial"
    for _ in range(2):
        resumed = _fetch(url, partial, timeout, progress, log, failure)
        if prefix is None:
            break
        digest = file_sha256(partial)
        if digest.startswith(prefix):
            break
        _remove(partial)
        _remove(partial + ".json")
        if not resumed:
            raise failure(f"its sha256 {digest[:16]}... does not start with {prefix}, the hash in its file name "
                          "(corrupt download, or the server sent another file); the download was deleted")
        log(f"warning: the resumed download of {url} failed its hash check; downloading it again from the start")
    _remove(partial + ".json")
    os.replace(partial, final)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _validator(partial: str) -> str:
    """The ETag (or Last-Modified) the partial file was downloaded under ("" if unknown)."""
    try:
        with open(partial + ".json", encoding="utf-8") as f:
            value = json.load(f).get("validator", "")
        return value if isinstance(value, str) else ""
    except (OSError, ValueError, AttributeError):
        return ""


def _open(url: str, offset: int, validator: str, timeout: float, failure: Callable[[str], HubError]):
    headers = {"User-Agent": "segnext_jt-hub", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:  # the server sends the whole file (200) if it changed since
            headers["If-Range"] = validator
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the partial file is not a prefix of this file
            exc.close()
            return None
        raise failure(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        unreachable = isinstance(exc.reason, OSError) and not isinstance(exc.reason, TimeoutError)
        raise failure(_reason(exc.reason, timeout) + (" (no network, or the host is unreachable?)"
                                                      if unreachable else "")) from None
    except (OSError, http.client.HTTPException) as exc:
        raise failure(_reason(exc, timeout)) from None


def _reason(exc: object, timeout: Optional[float] = None) -> str:
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return f"no answer within {timeout:g} s (timeout; set {ENV_TIMEOUT})" if timeout else "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _start_of(resp, offset: int) -> "tuple[int, Optional[int]]":
    """(byte offset the body starts at, total size or None) for a response to a request at `offset`;
    -1 as the start when a 206 answers another range than the one asked for."""
    length = resp.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if resp.status != 206:  # 200: the server ignored the range (or the file changed): start over
        return 0, length
    match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "").strip())
    if not match or int(match.group(1)) != offset:
        return -1, None
    total = match.group(3)
    return offset, int(total) if total.isdigit() else (offset + length if length is not None else None)


def _fetch(url: str, partial: str, timeout: float, progress: bool, log: Callable[[str], None],
           failure: Callable[[str], HubError]) -> bool:
    """Bring ``partial`` to the complete file; True when it continued an earlier partial download."""
    offset = os.path.getsize(partial) if os.path.isfile(partial) else 0
    resp = _open(url, offset, _validator(partial), timeout, failure) if offset else None
    start = -1 if offset else 0
    total: Optional[int] = None
    if resp is not None:
        start, total = _start_of(resp, offset)
        if start < 0:
            resp.close()
    if start < 0 or resp is None:  # no partial, or one the server cannot continue: from zero
        if offset:
            log(f"the partial download {partial} cannot be resumed; downloading from the start")
        resp = _open(url, 0, "", timeout, failure)
        start, total = _start_of(resp, 0)
    with resp:
        if start == 0:
            validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified") or ""
            with open(partial + ".json", "w", encoding="utf-8") as f:
                json.dump({"url": url, "validator": validator}, f)
        action = f"resuming at {start} bytes" if start else "downloading"
        log(f"{action} {url} to {partial[:-len('.partial')]}")
        received = _copy_body(resp, partial, start, total, timeout, progress, failure)
    if total is not None and received != total:
        raise failure(f"the connection closed after {received} of {total} bytes (truncated); "
                      f"run again to resume from {partial}")
    return start > 0


def _copy_body(resp, partial: str, start: int, total: Optional[int], timeout: float, progress: bool,
               failure: Callable[[str], HubError]) -> int:
    """Append (start > 0) or write the response body to `partial`, with a tqdm bar; bytes on disk."""
    from tqdm import tqdm
    received = start
    with open(partial, "ab" if start else "wb") as f, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                 desc=os.path.basename(partial)[:-len(".partial")][:40], disable=not progress,
                 mininterval=0.5) as bar:
        try:
            for block in iter(lambda: resp.read(_CHUNK), b""):
                f.write(block)
                received += len(block)
                bar.update(len(block))
        except http.client.IncompleteRead as exc:
            f.write(exc.partial)
            received += len(exc.partial)
        except OSError as exc:
            f.flush()
            what = f"after {received} of {total} bytes" if total else f"after {received} bytes"
            raise failure(f"{_reason(exc, timeout)} {what}; run again to resume from {partial}") from None
        f.flush()
        os.fsync(f.fileno())
    return received
