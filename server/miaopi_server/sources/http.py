"""The HTTP/JSON connector for a data-sharing platform (政务数据共享平台); the protocol is in
docs/SOURCES.md:

    POST <base>/v1/records   {"source": "population", "key": "<key fact>"}
        200 {"found": true, "record_id": "...", "values": {<catalogue field>: value, ...}}
        200 {"found": false}
    POST <base>/v1/licences  {"holder_id": "<identity number>"}
        200 {"licences": [{"licence_type", "holder_id", "number", "valid_from",
                           "valid_until" (null: no expiry), "revoked"}, ...]}

with `Authorization: Bearer <token>`. Anything else — no answer within the deadline, a refused
connection, 401/403, another status, a reply that is not that JSON or names a field or value
the catalogue does not have — is SourceUnavailable with the reason, never the key or the
reply's content (they hold personal data). One request per call: nothing is cached.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from miaopi_server.clock import utc_now
from miaopi_server.sources.catalogue import CATALOGUE, E_LICENSE_LIBRARY, LICENCE_TYPES
from miaopi_server.sources.embedded import LICENCE_FIELDS, check_value, stamp
from miaopi_server.sources.model import Licence, Record, SourceUnavailable

MAX_REPLY_BYTES = 1 << 20


class HttpPlatform:
    """A provider over a data-sharing platform's HTTP/JSON interface."""

    def __init__(
        self,
        base_url: str,
        token: str = "",
        ca_file: Path | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"数据共享平台地址应为 http(s)://主机[:端口][/路径]：{base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._clock = clock
        # https: the platform's certificate is verified, against `ca_file` when given.
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    # -- Provider -------------------------------------------------------------------------
    def fetch(self, source: str, key: str, deadline: float) -> Record | None:
        spec = CATALOGUE.get(source)
        if spec is None:
            raise SourceUnavailable(source, "数据目录中没有此数据源")
        reply = self._post(source, "/v1/records", {"source": source, "key": key}, deadline)
        at = stamp(self._clock())
        found = reply.get("found")
        if found is False:
            return None
        record_id, values = reply.get("record_id"), reply.get("values")
        if found is not True or not isinstance(record_id, str) or not record_id:
            raise SourceUnavailable(source, "答复格式错误：应有 found 与 record_id")
        if not isinstance(values, dict):
            raise SourceUnavailable(source, "答复格式错误：values 应为对象")
        for name, value in values.items():
            field = spec.fields.get(name)
            if field is None:
                raise SourceUnavailable(source, f"答复格式错误：数据源没有字段 {name[:40]!r}")
            try:
                check_value(field.kind, value)
            except ValueError:
                raise SourceUnavailable(source, f"答复格式错误：{name} 应为 {field.kind}") from None
        return Record(source, record_id, dict(values), at)

    def licences(self, holder_id: str, deadline: float) -> tuple[Licence, ...]:
        reply = self._post(E_LICENSE_LIBRARY, "/v1/licences", {"holder_id": holder_id}, deadline)
        at = stamp(self._clock())
        items = reply.get("licences")
        if not isinstance(items, list):
            raise SourceUnavailable(E_LICENSE_LIBRARY, "答复格式错误：licences 应为列表")
        try:
            return tuple(_licence(x, holder_id, at) for x in items)
        except (ValueError, TypeError, KeyError) as exc:
            raise SourceUnavailable(E_LICENSE_LIBRARY, f"答复格式错误：{exc}") from None

    # -- transport ------------------------------------------------------------------------
    def _post(self, source: str, path: str, body: dict[str, str], deadline: float) -> Any:
        headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=deadline, context=self._tls) as response:
                raw = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code in (401, 403):
                raise SourceUnavailable(
                    source, f"数据共享平台拒绝认证（HTTP {exc.code}）"
                ) from None
            raise SourceUnavailable(source, f"数据共享平台答复 HTTP {exc.code}") from None
        except TimeoutError:
            raise SourceUnavailable(source, f"超时（{deadline:g} 秒内无答复）") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError | socket.timeout):
                raise SourceUnavailable(source, f"超时（{deadline:g} 秒内无答复）") from None
            raise SourceUnavailable(source, f"无法连接：{_why(exc.reason)}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise SourceUnavailable(source, f"连接中断：{type(exc).__name__}") from None
        if len(raw) > MAX_REPLY_BYTES:
            raise SourceUnavailable(source, "答复过大")
        try:
            reply = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SourceUnavailable(source, "答复不是 JSON") from None
        if not isinstance(reply, dict):
            raise SourceUnavailable(source, "答复格式错误：应为 JSON 对象")
        return reply


def _why(reason: object) -> str:
    """A connection failure's kind, without addresses or the request."""
    if isinstance(reason, ssl.SSLError):
        return "TLS 握手失败（证书未通过验证？）"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__


def _licence(x: Any, holder_id: str, at: str) -> Licence:
    if not isinstance(x, dict) or set(x) != set(LICENCE_FIELDS):
        raise ValueError(f"电子证照应有且仅有字段 {', '.join(LICENCE_FIELDS)}")
    if x["licence_type"] not in LICENCE_TYPES:
        raise ValueError("未知的证照类型")
    if x["holder_id"] != holder_id:
        raise ValueError("证照持证人与所查询的不一致")
    if not isinstance(x["number"], str) or not x["number"]:
        raise ValueError("number 应为非空字符串")
    _check("date", x["valid_from"], "valid_from")
    if x["valid_until"] is not None:
        _check("date", x["valid_until"], "valid_until")
    _check("boolean", x["revoked"], "revoked")
    return Licence(
        x["licence_type"],
        holder_id,
        x["number"],
        dt.date.fromisoformat(x["valid_from"]),
        dt.date.fromisoformat(x["valid_until"]) if x["valid_until"] else None,
        x["revoked"],
        at,
    )


def _check(kind: str, value: Any, name: str) -> None:
    """check_value, with a message that names the field but not the value."""
    try:
        check_value(kind, value)
    except ValueError:
        raise ValueError(f"{name} 应为 {kind}") from None
