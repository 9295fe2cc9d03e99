"""Generate the embedded registry's sample population (deterministic; run from anywhere):

    python data/registry/generate.py [OUT_DIR]

Writes v1/*.jsonl beside this script (or under OUT_DIR). Every resident ID number here has
sequence digits (positions 15-17) 990-999: the range reserved for this registry
(shared/items/README.md), so no example or regression case collides with a record by accident.
Values come from SHA-256 of a fixed seed, not from `random`, so every Python version writes the
same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = "miaopi-registry-v1"
PEOPLE = 300
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
OTHER_REGIONS = ("440604", "440606", "440607", "440608", "440103", "110105")


def draw(index: int, what: str, n: int) -> int:
    """A number in [0, n) fixed by (seed, index, what)."""
    digest = hashlib.sha256(f"{SEED}/{index}/{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def resident_id(region: str, birth: dt.date, seq: int) -> str:
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, WEIGHTS, strict=True)) % 11]


SURNAMES = "陈李黄梁何张吴林罗郭冯邓谭关"
GIVEN = "志伟秀英国强丽华建明桂芳少玲家辉惠珍永康"


def person(i: int) -> dict[str, object]:
    birth = dt.date(1915, 1, 1) + dt.timedelta(days=draw(i, "birth", 95 * 365))
    seq = 990 + draw(i, "seq", 10)
    region = "440605" if draw(i, "local", 10) < 8 else OTHER_REGIONS[draw(i, "region", 6)]
    name = SURNAMES[draw(i, "s", len(SURNAMES))] + "".join(
        GIVEN[draw(i, f"g{k}", len(GIVEN))] for k in range(1 + draw(i, "glen", 2))
    )
    return {
        "record_id": f"POP-{i + 1:06d}",
        "key": resident_id("440605", birth, seq),
        "name": name,
        "hukou_region": region,
        "deceased": draw(i, "deceased", 20) == 0,
    }


def main(root: Path = HERE) -> None:
    people, seen = [], set()
    i = 0
    while len(people) < PEOPLE:
        p = person(i)
        i += 1
        if p["key"] not in seen:
            seen.add(p["key"])
            people.append(p)
    disability, benefits, licences = [], [], []
    for n, p in enumerate(people):
        key = str(p["key"])
        birth = dt.date(int(key[6:10]), int(key[10:12]), int(key[12:14]))
        if draw(n, "disabled", 5) == 0:
            veteran = draw(n, "veteran", 8) == 0
            expiry = dt.date(2022, 1, 1) + dt.timedelta(days=draw(n, "expiry", 8 * 365))
            number = f"{key[:6]}{draw(n, 'cn', 10**8):08d}"
            disability.append(
                {
                    "record_id": f"CDPF-{n + 1:06d}",
                    "key": key,
                    "certificate_type": "veteran_card" if veteran else "disability_card",
                    "certificate_number": number,
                    "grade": 1 + draw(n, "grade", 4),
                    "certificate_expiry": expiry.isoformat(),
                }
            )
            ctype = "veteran_card" if veteran else "disability_card"
            licences.append(licence(ctype, key, f"DZZZ-{ctype}-{number}", expiry, n))
        senior = birth.year < 1956 and draw(n, "senior", 3) == 0
        subsidy = any(d["key"] == key for d in disability) and draw(n, "subsidy", 3) == 0
        if senior or subsidy or draw(n, "ledger", 6) == 0:
            benefits.append(
                {
                    "record_id": f"MZ-{n + 1:06d}",
                    "key": key,
                    "receiving_senior_allowance": senior,
                    "receiving_disability_subsidy": subsidy,
                }
            )
        if not p["deceased"]:
            id_until = dt.date(2020, 1, 1) + dt.timedelta(days=draw(n, "idexp", 20 * 365))
            licences.append(licence("resident_id_card", key, f"DZZZ-ID-{key}", id_until, n))
            if p["hukou_region"] == "440605":
                licences.append(licence("hukou_book", key, f"DZZZ-HK-{n + 1:06d}", None, n))
    out = root / "v1"
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (
        ("population", people),
        ("disability", disability),
        ("benefits", benefits),
        ("elicense", licences),
    ):
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        (out / f"{name}.jsonl").write_text(text, encoding="utf-8")


def licence(
    kind: str, holder: str, number: str, until: dt.date | None, n: int
) -> dict[str, object]:
    return {
        "licence_type": kind,
        "holder_id": holder,
        "number": number,
        "valid_from": "2015-01-01",
        "valid_until": until.isoformat() if until else None,
        "revoked": draw(n, f"revoked-{kind}", 25) == 0,
    }


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
