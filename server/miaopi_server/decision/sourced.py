"""Facts and e-licenses from shared data, merged into a case BEFORE it is decided (四免).

Pure: the lookups were run by the caller (ops/lookups.py on the server, or read back from a
recorded decision on replay) and arrive here as `Gathered`, plain data that round-trips through
JSON. This module applies the item's settings to it:

- a fact the window left out is taken from the source (免填表);
- a fact the window sent that the source contradicts: `source_wins` takes the source's value
  and says so; `manual_review` keeps the window's value and sends the case to a human with both
  values named (数据不一致);
- no record: `use_window` decides on the window's value and says so; `manual_review` sends the
  case to a human; `invalid_argument` refuses the case naming the key;
- source unavailable: `manual_review` (never a silent APPROVE on window-typed data) or an
  UNAVAILABLE error;
- a material with an `e_license_type` counts as submitted when the holder has a licence of that
  type valid on the as-of date; the decision names the licence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from miaopi_server.errors import CaseInvalid, FieldViolation
from miaopi_server.rules.model import Item, Material
from miaopi_server.sources.catalogue import E_LICENSE_LIBRARY
from miaopi_server.sources.model import Licence, SourceUnavailable

FOUND, NO_RECORD, UNAVAILABLE = "found", "no_record", "unavailable"
WINDOW, SOURCE, DEFAULT, DERIVED = "window", "source", "default", "derived"
MANUAL_REVIEW = "MANUAL_REVIEW"


@dataclass(frozen=True)
class Lookup:
    """What one source said for one case; `key` is whose data was looked up."""

    source: str
    key_path: str
    status: str  # found | no_record | unavailable
    record_id: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    fetched_at: str = ""
    reason: str = ""  # why unavailable (no personal data)
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        """As proto3 JSON of miaopi.v1.SourceLookup (empty fields left out)."""
        out: dict[str, Any] = {"source": self.source, "key_path": self.key_path}
        out["status"] = self.status
        for name in ("record_id", "fetched_at", "reason", "key"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.values:
            out["values"] = dict(sorted(self.values.items()))
        return out


@dataclass(frozen=True)
class Gathered:
    """Every lookup made for one case, with the applicant's authorisation (授权) reference."""

    consent: str
    lookups: tuple[Lookup, ...] = ()
    licences: tuple[Licence, ...] = ()
    licences_status: str = ""  # "" not looked up | found | unavailable
    licences_fetched_at: str = ""

    def to_json(self) -> dict[str, Any]:
        """As proto3 JSON of miaopi.v1.SourcedData (empty fields left out): what a decision
        records, and what `from_json` reads back on replay."""
        out: dict[str, Any] = {"consent": self.consent} if self.consent else {}
        if self.lookups:
            out["lookups"] = [lk.to_json() for lk in self.lookups]
        if self.licences_status:
            out["licences"] = {"status": self.licences_status}
            if self.licences_fetched_at:
                out["licences"]["fetched_at"] = self.licences_fetched_at
            if self.licences:
                out["licences"]["items"] = [licence_json(lic) for lic in self.licences]
        return out

    @classmethod
    def from_json(cls, data: Any) -> Gathered:
        """Read back what `to_json` wrote (a recorded decision's `sourced`, or a case file's);
        ValueError naming what is wrong otherwise."""
        if not isinstance(data, dict):
            raise ValueError("sourced 应为 JSON 对象")
        try:
            lookups = tuple(_lookup(lk) for lk in data.get("lookups", []))
            lic = data.get("licences") or {}
            at = _text(lic, "fetched_at")
            licences = tuple(
                Licence(
                    _text(x, "licence_type", True),
                    _text(x, "holder_id", True),
                    _text(x, "number", True),
                    dt.date.fromisoformat(_text(x, "valid_from", True)),
                    dt.date.fromisoformat(x["valid_until"]) if x.get("valid_until") else None,
                    x.get("revoked", False) is True,
                    at,
                )
                for x in lic.get("items", [])
            )
            return cls(_text(data, "consent"), lookups, licences, _text(lic, "status"), at)
        except (AttributeError, TypeError) as exc:
            raise ValueError(f"sourced 的结构不对：{exc}") from None


def _text(obj: Any, name: str, required: bool = False) -> str:
    value = obj.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise ValueError(f"sourced 中的 {name} 应为{'非空' if required else ''}字符串")
    return value


def _lookup(lk: Any) -> Lookup:
    values = lk.get("values", {})
    status = _text(lk, "status", True)
    if status not in (FOUND, NO_RECORD, UNAVAILABLE):
        raise ValueError(f"sourced 中的 status 应为 {FOUND}、{NO_RECORD}、{UNAVAILABLE} 之一")
    if not isinstance(values, dict):
        raise ValueError("sourced 中的 values 应为 JSON 对象")
    return Lookup(
        _text(lk, "source", True),
        _text(lk, "key_path", True),
        status,
        _text(lk, "record_id"),
        dict(values),
        _text(lk, "fetched_at"),
        _text(lk, "reason"),
        _text(lk, "key"),
    )


def licence_json(lic: Licence) -> dict[str, Any]:
    """As proto3 JSON of miaopi.v1.ELicense."""
    out: dict[str, Any] = {
        "licence_type": lic.licence_type,
        "holder_id": lic.holder_id,
        "number": lic.number,
        "valid_from": lic.valid_from.isoformat(),
    }
    if lic.valid_until:
        out["valid_until"] = lic.valid_until.isoformat()
    if lic.revoked:
        out["revoked"] = True
    return out


@dataclass(frozen=True)
class FactOrigin:
    """Where one fact of the decision came from, so an appeal sees what the machine saw."""

    path: str
    origin: str  # window | source | default | derived
    source: str = ""
    record_id: str = ""
    fetched_at: str = ""
    note: str = ""


@dataclass(frozen=True)
class ELicenseUse:
    """A material counted as submitted because the library holds a valid licence (免证办)."""

    material_id: str
    licence_type: str
    number: str
    fetched_at: str = ""


@dataclass(frozen=True)
class DataNote:
    """A finding about the data itself; `review` ones send the case to a human."""

    rule_id: str
    message: str
    path: str
    window_value: Any
    review: bool


@dataclass(frozen=True)
class Merged:
    facts: dict[str, Any]
    origins: dict[str, FactOrigin]
    notes: tuple[DataNote, ...]


def _get(facts: dict[str, Any], path: str) -> Any:
    node: Any = facts
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set(facts: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `facts` with `path` set (the caller's dicts are never mutated)."""
    head, _, rest = path.partition(".")
    out = dict(facts)
    if not rest:
        out[head] = value
    else:
        inner = out.get(head)
        out[head] = _set(inner if isinstance(inner, dict) else {}, rest, value)
    return out


def merge_facts(item: Item, facts: Any, gathered: Gathered | None) -> Merged:
    """Apply the item's source settings to the window's facts. Raises CaseInvalid for a missing
    record under `invalid_argument`, SourceUnavailable under `unavailable`."""
    if gathered is None or not item.sources or not isinstance(facts, dict):
        return Merged(facts, {}, ())
    by_source = {lk.source: lk for lk in gathered.lookups}
    origins: dict[str, FactOrigin] = {}
    notes: list[DataNote] = []
    invalid: list[FieldViolation] = []
    for b in item.sources:
        lk = by_source.get(b.source)
        if lk is None:
            continue
        if lk.status == UNAVAILABLE:
            if b.on_unavailable == "unavailable":
                raise SourceUnavailable(b.source, lk.reason or "不可用")
            for path, _ in b.facts:
                origins[path] = FactOrigin(path, WINDOW, note=f"{b.label}不可用，采用窗口填写值")
            notes.append(
                DataNote(
                    f"data:unavailable:{b.source}",
                    f"{b.label}暂不可用，无法核验窗口填写的信息，转人工审核",
                    b.key,
                    None,
                    True,
                )
            )
            continue
        if lk.status == NO_RECORD:
            if b.on_missing_record == "invalid_argument":
                invalid.append(FieldViolation(f"facts.{b.key}", f"{b.label}中没有此人的记录"))
            elif b.on_missing_record == "manual_review":
                notes.append(
                    DataNote(
                        f"data:no_record:{b.source}",
                        f"{b.label}中没有申请人的记录，转人工核验",
                        b.key,
                        None,
                        True,
                    )
                )
            for path, _ in b.facts:
                note = f"{b.label}中没有记录，采用窗口填写值"
                origins[path] = FactOrigin(path, WINDOW, note=note)
            continue
        for path, name in b.facts:
            if name not in lk.values:  # the source holds no value for this field
                origins[path] = FactOrigin(path, WINDOW, note=f"{b.label}无此项，采用窗口填写值")
                continue
            value, given = lk.values[name], _get(facts, path)
            origin = FactOrigin(path, SOURCE, b.source, lk.record_id, lk.fetched_at)
            if given is None:
                facts = _set(facts, path, value)
            elif given != value or (type(given) is bool) != (type(value) is bool):
                label = (item.fields[path].label or path) if path in item.fields else path
                both = f"窗口填写 {given!r}，{b.label}记录 {value!r}"
                if b.on_conflict == "source_wins":
                    facts = _set(facts, path, value)
                    origin = FactOrigin(
                        path,
                        SOURCE,
                        b.source,
                        lk.record_id,
                        lk.fetched_at,
                        f"以共享数据为准（{both}）",
                    )
                    notes.append(
                        DataNote(
                            f"data:corrected:{path}",
                            f"{label}：{both}，以共享数据为准",
                            path,
                            given,
                            False,
                        )
                    )
                else:
                    origin = FactOrigin(
                        path, WINDOW, b.source, lk.record_id, lk.fetched_at, f"数据不一致（{both}）"
                    )
                    notes.append(
                        DataNote(
                            f"data:conflict:{path}",
                            f"数据不一致：{label}{both}，转人工审核",
                            path,
                            given,
                            True,
                        )
                    )
            origins[path] = origin
    if invalid:
        raise CaseInvalid(invalid)
    return Merged(facts, origins, tuple(notes))


def e_license_uses(
    item: Item, gathered: Gathered | None, submitted: frozenset[str], as_of: dt.date
) -> tuple[ELicenseUse, ...]:
    """Materials not submitted on paper that a licence valid on `as_of` satisfies."""
    if gathered is None or gathered.licences_status != FOUND:
        return ()
    uses = []
    for m in item.materials:
        if not _licensable(m) or m.id in submitted:
            continue
        valid = sorted(
            (
                x
                for x in gathered.licences
                if x.licence_type == m.e_license_type and x.valid_on(as_of)
            ),
            key=lambda x: x.number,
        )
        if valid:
            uses.append(ELicenseUse(m.id, m.e_license_type, valid[0].number, valid[0].fetched_at))
    return tuple(uses)


def _licensable(m: Material) -> bool:
    return m.e_license and bool(m.e_license_type)


def licence_library_note(
    item: Item, gathered: Gathered | None, submitted: frozenset[str]
) -> DataNote | None:
    """An unavailable e-license library, when a material it could have satisfied is missing,
    sends the case to a human (who can see the licence) rather than reject it unverified."""
    if gathered is None or gathered.licences_status != UNAVAILABLE:
        return None
    if not any(_licensable(m) and m.id not in submitted for m in item.materials):
        return None  # every licensable material came on paper: nothing was left unverified
    return DataNote(
        f"data:unavailable:{E_LICENSE_LIBRARY}",
        "电子证照库暂不可用，未能以电子证照核验材料",
        item.e_license_holder,
        None,
        True,
    )
