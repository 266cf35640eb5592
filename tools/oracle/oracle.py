#!/usr/bin/env python3
"""Independent reference implementation ("oracle") of the cardlink behaviour contract.

Written from shared/contract.md alone (sections 1-6), standard library only, for
differential testing against the Rust implementation:

    python3 oracle.py replay --offers OFFERS.json --events EVENTS.jsonl \
        [--rewards REWARDS.jsonl] [--ledger LEDGER.json] [--dead-letters DLQ.jsonl]

Rules are cited by their contract numbers (R1...R11). Where the contract is
silent, the project's documented interpretation choices are used; they are
listed in README.md beside this file.
"""

from __future__ import annotations

import argparse
import decimal
import json
import re
import sys
from decimal import ROUND_DOWN, Decimal

# Exact arithmetic: amounts are multiplied by percents / points rates and divided
# by 100 only, so a generous precision keeps every intermediate result exact.
decimal.setcontext(decimal.Context(prec=100000, rounding=ROUND_DOWN,
                                   Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN))

# --------------------------------------------------------------------------- tables

# ISO 4217 active codes with their minor units. Codes without a minor unit
# (XAU, XAG, XPD, XPT, XBA..XBD, XDR, XSU, XUA, XTS, XXX) are not money here.
_MINOR0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_MINOR3 = "BHD IQD JOD KWD LYD OMR TND"
_MINOR4 = "CLF UYW"
_MINOR2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD "
    "EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR "
    "IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP "
    "MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN "
    "QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL "
    "THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR "
    "ZMW ZWG ZWL"
)
CURRENCY_MINOR: dict[str, int] = {}
for _digits, _codes in ((0, _MINOR0), (2, _MINOR2), (3, _MINOR3), (4, _MINOR4)):
    for _c in _codes.split():
        CURRENCY_MINOR[_c] = _digits

# ISO 3166-1 alpha-2, the 249 officially assigned codes.
COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW
""".split())

KINDS = ("AUTHORIZATION", "CLEARING", "AUTH_REVERSAL", "REFUND", "ACTIVATION")
NETWORKS = ("VISA", "MASTERCARD", "AMEX", "DISCOVER")
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")

AUTH, CLEARING, REVERSAL, REFUND, ACTIVATION = KINDS
PENDING, CONFIRMED, CANCELLED = "PENDING", "CONFIRMED", "CANCELLED"

# [0-9] rather than \d: \d also matches non-ASCII digits.
DECIMAL_RE = re.compile(r"[0-9]+(\.[0-9]+)?")
TOKEN_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
MCC_RE = re.compile(r"[0-9]{4}")
HHMM_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)

ZERO = Decimal(0)


# --------------------------------------------------------------------------- helpers

# Project limits (docs/decisions.md), so every value and sum stays exact in the
# implementation's 28-digit decimals.
LIMIT_AMOUNT = Decimal(10) ** 15
LIMIT_OFFER_DECIMAL = Decimal(10) ** 24


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def days_in_month(y: int, m: int) -> int:
    if m == 2:
        leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
        return 29 if leap else 28
    return 30 if m in (4, 6, 9, 11) else 31


class Instant:
    """An RFC 3339 timestamp: the exact instant plus its local (offset) calendar view."""

    __slots__ = ("epoch", "weekday", "local_seconds")

    def __init__(self, epoch: Decimal, weekday: int, local_seconds: Decimal):
        self.epoch = epoch              # exact seconds since 1970-01-01T00:00:00Z
        self.weekday = weekday          # local date's weekday, 0 = MON
        self.local_seconds = local_seconds  # local time of day in seconds


def parse_rfc3339(s) -> Instant | None:
    if not isinstance(s, str):
        return None
    m = RFC3339_RE.fullmatch(s)
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = Decimal("0" + m.group(7)) if m.group(7) else ZERO
    if not (1 <= mo <= 12 and 1 <= d <= days_in_month(y, mo)):
        return None
    if h > 23 or mi > 59 or sec > 59:
        return None
    off = m.group(8)
    if off in ("Z", "z"):
        off_s = 0
    else:
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        off_s = (oh * 3600 + om * 60) * (1 if off[0] == "+" else -1)
    days = days_from_civil(y, mo, d)
    local = h * 3600 + mi * 60 + sec
    epoch = Decimal(days * 86400 + local - off_s) + frac
    return Instant(epoch, (days + 3) % 7, Decimal(local) + frac)


def is_pan(token: str) -> bool:
    """R1: 13-19 ASCII digits passing the Luhn check."""
    if not (13 <= len(token) <= 19) or not all("0" <= c <= "9" for c in token):
        return False
    total = 0
    for i, c in enumerate(reversed(token)):
        n = ord(c) - 48
        if i % 2 == 1:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def fmt_units(value: Decimal, digits: int) -> str:
    q = value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_DOWN)
    if q == 0:
        q = abs(q)  # never "-0.00"
    return format(q, "f")


def escape_id_part(s: str) -> str:
    return s.replace("%", "%25").replace("|", "%7C")


def reward_id(offer_id: str, transaction_id: str, card_token: str) -> str:
    return f"{escape_id_part(offer_id)}|{escape_id_part(transaction_id)}|{card_token}"


# --------------------------------------------------------------------------- offers

class OfferError(Exception):
    pass


class Offer:
    __slots__ = ("id", "currency", "kind", "rate", "mids", "mccs", "countries", "networks",
                 "min_spend", "max_reward", "valid_from", "valid_until", "days", "hours",
                 "activation_required", "max_per_card", "budget")

    @property
    def is_cash(self) -> bool:
        return self.kind != "points_per_unit"

    @property
    def unit(self) -> str:
        return self.currency if self.is_cash else "POINTS"

    @property
    def digits(self) -> int:
        return CURRENCY_MINOR[self.currency] if self.is_cash else 0


def _absent(v) -> bool:
    return v is None  # JSON null counts as absent


def load_offers(data) -> list[Offer]:
    if not isinstance(data, list):
        raise OfferError("offer file: must be a JSON array of offers")
    offers: list[Offer] = []
    seen: set[str] = set()
    for index, raw in enumerate(data):
        label = f"#{index}"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw.get("id"):
            label = repr(raw["id"])

        def bad(field: str, why: str):
            raise OfferError(f"offer {label} (index {index}): field `{field}`: {why}")

        if not isinstance(raw, dict):
            bad("(offer)", "must be a JSON object")
        o = Offer()

        oid = raw.get("id")
        if not isinstance(oid, str) or oid == "":
            bad("id", "must be a non-empty string")
        if is_pan(oid):
            bad("id", "is a raw card number")
        if oid in seen:
            bad("id", "duplicate id")
        seen.add(oid)
        o.id = oid

        cur = raw.get("currency")
        if not isinstance(cur, str) or cur not in CURRENCY_MINOR:
            bad("currency", "must be an ISO 4217 code with a minor unit")
        o.currency = cur

        def dec(field: str, v) -> Decimal:
            if not isinstance(v, str) or not DECIMAL_RE.fullmatch(v):
                bad(field, "must be a decimal string such as \"12.50\"")
            if Decimal(v) >= LIMIT_OFFER_DECIMAL:
                bad(field, "must be below 10^24")
            return Decimal(v)

        rew = raw.get("reward")
        if not isinstance(rew, dict):
            bad("reward", "must be an object")
        present = [k for k in ("percent", "fixed", "points_per_unit") if not _absent(rew.get(k))]
        if len(present) != 1:
            bad("reward", "must hold exactly one of percent, fixed, points_per_unit")
        o.kind = present[0]
        o.rate = dec(f"reward.{o.kind}", rew[o.kind])
        if o.kind == "percent" and not (ZERO < o.rate <= 100):
            bad("reward.percent", "must be > 0 and <= 100")
        if o.kind != "percent" and not o.rate > 0:
            bad(f"reward.{o.kind}", "must be > 0")
        # Project limits (docs/decisions.md).
        if o.kind == "points_per_unit" and o.rate > 1000000:
            bad("reward.points_per_unit", "must be at most 1000000")

        def str_list(field: str, v, check=None, what="") -> frozenset | None:
            if _absent(v):
                return None
            if not isinstance(v, list):
                bad(field, "must be a list")
            for item in v:
                if not isinstance(item, str) or (check is not None and not check(item)):
                    bad(field, f"every item must be {what or 'a string'}")
            return frozenset(v) if v else None  # an empty list matches anything

        merch = raw.get("merchant")
        o.mids = o.mccs = o.countries = None
        if not _absent(merch):
            if not isinstance(merch, dict):
                bad("merchant", "must be an object")
            o.mids = str_list("merchant.mids", merch.get("mids"))
            o.mccs = str_list("merchant.mccs", merch.get("mccs"),
                              lambda s: MCC_RE.fullmatch(s) is not None, "4 digits")
            o.countries = str_list("merchant.countries", merch.get("countries"),
                                   lambda s: s in COUNTRIES, "an ISO 3166 alpha-2 code")
        o.networks = str_list("networks", raw.get("networks"), lambda s: s in NETWORKS,
                              "one of " + ", ".join(NETWORKS))

        v = raw.get("min_spend")
        o.min_spend = ZERO if _absent(v) else dec("min_spend", v)
        v = raw.get("max_reward")
        o.max_reward = None if _absent(v) else dec("max_reward", v)
        v = raw.get("budget")
        o.budget = None if _absent(v) else dec("budget", v)

        o.valid_from = o.valid_until = None
        for field in ("valid_from", "valid_until"):
            v = raw.get(field)
            if not _absent(v):
                t = parse_rfc3339(v)
                if t is None:
                    bad(field, "must be an RFC 3339 timestamp with an offset")
                setattr(o, field, t.epoch)

        v = raw.get("days")
        days = str_list("days", v, lambda s: s in DAYS, "one of MON..SUN")
        o.days = None if days is None else frozenset(DAYS.index(d) for d in days)

        v = raw.get("hours")
        o.hours = None
        if not _absent(v):
            if not isinstance(v, dict):
                bad("hours", "must be an object with from and until")
            bounds = []
            for k in ("from", "until"):
                hv = v.get(k)
                mm = HHMM_RE.fullmatch(hv) if isinstance(hv, str) else None
                if not mm:
                    bad(f"hours.{k}", "must be \"HH:MM\" between 00:00 and 23:59")
                bounds.append(int(mm.group(1)) * 3600 + int(mm.group(2)) * 60)
            if bounds[0] == bounds[1]:
                bad("hours", "from = until is invalid")
            o.hours = (Decimal(bounds[0]), Decimal(bounds[1]))

        v = raw.get("activation_required")
        if _absent(v):
            v = False
        if not isinstance(v, bool):
            bad("activation_required", "must be a boolean")
        o.activation_required = v

        v = raw.get("max_per_card")
        if _absent(v):
            o.max_per_card = None
        elif isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v >= 2**64:
            bad("max_per_card", "must be a positive integer")
        else:
            o.max_per_card = v

        offers.append(o)
    return offers


# --------------------------------------------------------------------------- events (R1)

class Rejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Event:
    __slots__ = ("event_id", "kind", "card", "at", "network", "txid", "amount", "currency",
                 "mid", "mcc", "country", "offer_id")


def validate_event(raw, engine: "Engine") -> Event:
    """R1: returns the event or raises Rejected. Fields not listed for a kind are ignored."""
    if not isinstance(raw, dict):
        raise Rejected("NOT_AN_OBJECT")
    tok = raw.get("card_token")
    # R1's PAN rule, extended to the identifiers written back out (docs/decisions.md).
    for name in ("card_token", "event_id", "transaction_id", "offer_id", "amount"):
        v = raw.get(name)
        if name == "amount" and isinstance(v, str):
            v = v.split(".")[0]  # its whole units
        if isinstance(v, str) and is_pan(v):
            raise Rejected("PAN_DETECTED")
    ev = Event()
    eid = raw.get("event_id")
    if not isinstance(eid, str) or eid == "":
        raise Rejected("INVALID_EVENT_ID")
    ev.event_id = eid
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise Rejected("INVALID_KIND")
    ev.kind = kind
    if not isinstance(tok, str) or not TOKEN_RE.fullmatch(tok):
        raise Rejected("INVALID_CARD_TOKEN")
    ev.card = tok
    ev.at = parse_rfc3339(raw.get("occurred_at"))
    if ev.at is None:
        raise Rejected("INVALID_OCCURRED_AT")

    ev.txid = ev.network = ev.amount = ev.currency = None
    ev.mid = ev.mcc = ev.country = ev.offer_id = None

    if kind != ACTIVATION:
        txid = raw.get("transaction_id")
        if not isinstance(txid, str) or txid == "":
            raise Rejected("INVALID_TRANSACTION_ID")
        ev.txid = txid

    if kind in (AUTH, CLEARING):
        net = raw.get("network")
        if not isinstance(net, str) or net not in NETWORKS:
            raise Rejected("INVALID_NETWORK")
        ev.network = net

    if kind in (AUTH, CLEARING, REFUND):
        cur = raw.get("currency")
        if not isinstance(cur, str) or cur not in CURRENCY_MINOR:
            raise Rejected("INVALID_CURRENCY")
        amt = raw.get("amount")
        if not isinstance(amt, str) or not DECIMAL_RE.fullmatch(amt):
            raise Rejected("INVALID_AMOUNT")
        if "." in amt and len(amt.split(".", 1)[1]) > CURRENCY_MINOR[cur]:
            raise Rejected("INVALID_AMOUNT")
        ev.currency = cur
        ev.amount = Decimal(amt)
        # Project limit (docs/decisions.md): amounts below 10^15 keep every value exact.
        if ev.amount >= LIMIT_AMOUNT:
            raise Rejected("INVALID_FIELD")

    if kind in (AUTH, CLEARING):
        m = raw.get("merchant")
        if not isinstance(m, dict):
            raise Rejected("INVALID_MERCHANT")
        mid = m.get("mid")
        if not isinstance(mid, str):
            raise Rejected("INVALID_MERCHANT_MID")
        mcc = m.get("mcc")
        if not isinstance(mcc, str) or not MCC_RE.fullmatch(mcc):
            raise Rejected("INVALID_MERCHANT_MCC")
        country = m.get("country")
        if country is not None and (not isinstance(country, str) or country not in COUNTRIES):
            raise Rejected("INVALID_MERCHANT_COUNTRY")
        name = m.get("name")
        if name is not None and not isinstance(name, str):
            raise Rejected("INVALID_MERCHANT_NAME")
        ev.mid, ev.mcc, ev.country = mid, mcc, country

    if kind == ACTIVATION:
        oid = raw.get("offer_id")
        if not isinstance(oid, str):
            raise Rejected("INVALID_OFFER_ID")
        ev.offer_id = oid

    # R1: currency mismatches against the transaction's earlier events.
    txn = engine.txns.get((ev.card, ev.txid)) if ev.txid is not None else None
    if txn is not None:
        if kind == CLEARING and txn.authorized and txn.auth_currency != ev.currency:
            raise Rejected("CURRENCY_MISMATCH")
        if kind == REFUND and txn.cleared and txn.clear_currency != ev.currency:
            raise Rejected("CURRENCY_MISMATCH")
    return ev


# --------------------------------------------------------------------------- engine

class Reward:
    __slots__ = ("rid", "offer", "card", "txid", "status", "value")

    def __init__(self, offer: Offer, card: str, txid: str):
        self.rid = reward_id(offer.id, txid, card)
        self.offer, self.card, self.txid = offer, card, txid
        self.status = None   # no record yet
        self.value = ZERO

    @property
    def live(self) -> bool:
        # R6: live = pending or confirmed with a value above zero
        return self.status in (PENDING, CONFIRMED) and self.value > 0


class Txn:
    __slots__ = ("authorized", "auth_currency", "cleared", "clear_currency", "cleared_amount",
                 "refunded", "rewards")

    def __init__(self):
        self.authorized = False
        self.auth_currency = None
        self.cleared = False
        self.clear_currency = None
        self.cleared_amount = ZERO
        self.refunded = ZERO
        self.rewards: list[Reward] = []


class Engine:
    def __init__(self, offers: list[Offer]):
        self.offers = offers
        self.txns: dict[tuple[str, str], Txn] = {}
        self.seen: set[tuple[str, str]] = set()
        self.activated: set[tuple[str, str]] = set()
        self.used: dict[str, Decimal] = {o.id: ZERO for o in offers}       # live value sum
        self.live_count: dict[str, int] = {o.id: 0 for o in offers}
        self.card_live: dict[tuple[str, str], int] = {}                  # (offer, card)
        self.rewards: list[Reward] = []
        self.records: list[dict] = []
        self.processed = self.duplicate = self.rejected = 0

    # ---- reward changes and records (section 5)
    def set_reward(self, r: Reward, status: str, value: Decimal, event_id: str):
        if r.status == status and r.value == value:
            return  # unchanged: no record
        o = r.offer
        was_live, old = r.live, r.value
        if was_live:
            self.used[o.id] -= old
            self.live_count[o.id] -= 1
            self.card_live[(o.id, r.card)] -= 1
        r.status, r.value = status, value
        if r.live:
            self.used[o.id] += value
            self.live_count[o.id] += 1
            key = (o.id, r.card)
            self.card_live[key] = self.card_live.get(key, 0) + 1
        rec = {
            "reward_id": r.rid, "offer_id": o.id, "card_token": r.card,
            "transaction_id": r.txid, "event_id": event_id, "status": status,
            "kind": "CASH" if o.is_cash else "POINTS",
            "value": fmt_units(value, o.digits), "delta": fmt_units(value - old, o.digits),
        }
        if o.is_cash:
            rec["currency"] = o.currency
        self.records.append(rec)

    # ---- R4
    def value(self, o: Offer, amount: Decimal, used_by_others: Decimal) -> Decimal:
        if o.kind == "percent":
            v = amount * o.rate / 100
        elif o.kind == "fixed":
            v = o.rate
        else:
            v = amount * o.rate
        if o.max_reward is not None:
            v = min(v, o.max_reward)
        if o.budget is not None:
            v = min(v, o.budget - used_by_others)
        v = v.quantize(Decimal(1).scaleb(-o.digits), rounding=ROUND_DOWN)
        return v if v > 0 else ZERO

    # ---- R3
    def eligible(self, o: Offer, ev: Event) -> bool:
        if o.mids is not None and ev.mid not in o.mids:
            return False
        if o.mccs is not None and ev.mcc not in o.mccs:
            return False
        if o.countries is not None and ev.country not in o.countries:
            return False
        if o.networks is not None and ev.network not in o.networks:
            return False
        if o.valid_from is not None and not o.valid_from <= ev.at.epoch:
            return False
        if o.valid_until is not None and not ev.at.epoch < o.valid_until:
            return False
        if o.days is not None and ev.at.weekday not in o.days:
            return False
        if o.hours is not None:
            start, end = o.hours
            t = ev.at.local_seconds
            inside = (start <= t < end) if start < end else (t >= start or t < end)
            if not inside:
                return False
        if o.currency != ev.currency:
            return False
        if not (ev.amount >= o.min_spend and ev.amount > 0):
            return False
        if o.activation_required and (ev.card, o.id) not in self.activated:
            return False
        if o.max_per_card is not None and self.card_live.get((o.id, ev.card), 0) >= o.max_per_card:
            return False
        if o.budget is not None and not self.used[o.id] < o.budget:
            return False
        return True

    # ---- R3-R7 for a purchase (new authorization, or clearing without one)
    def purchase(self, ev: Event, txn: Txn, status: str):
        best = None  # (value, offer) of the cash offers (R5)
        points = []
        for o in self.offers:
            if not self.eligible(o, ev):
                continue
            v = self.value(o, ev.amount, self.used[o.id])
            if v == 0:
                continue  # R4: a value of zero does not make a reward
            if o.is_cash:
                if best is None or v > best[0] or (v == best[0] and o.id.encode() < best[1].id.encode()):
                    best = (v, o)
            else:
                points.append((v, o))
        chosen = ([best] if best is not None else []) + points
        for v, o in chosen:
            r = Reward(o, ev.card, ev.txid)
            txn.rewards.append(r)
            self.rewards.append(r)
            self.set_reward(r, status, v, ev.event_id)

    def own(self, r: Reward) -> Decimal:
        return r.value if r.live else ZERO

    # ---- one valid event
    def apply(self, ev: Event):
        if ev.kind == ACTIVATION:
            self.activated.add((ev.card, ev.offer_id))
            return
        key = (ev.card, ev.txid)
        txn = self.txns.get(key)
        if ev.kind == AUTH:  # R8
            if txn is not None:
                return  # known transaction (authorized or cleared): changes nothing
            txn = self.txns[key] = Txn()
            txn.authorized, txn.auth_currency = True, ev.currency
            self.purchase(ev, txn, PENDING)
        elif ev.kind == CLEARING:  # R9
            if txn is None:
                txn = self.txns[key] = Txn()
                txn.cleared, txn.clear_currency, txn.cleared_amount = True, ev.currency, ev.amount
                self.purchase(ev, txn, CONFIRMED)
                return
            if txn.cleared:
                return  # a second CLEARING changes nothing
            txn.cleared, txn.clear_currency, txn.cleared_amount = True, ev.currency, ev.amount
            for r in txn.rewards:
                if r.status != PENDING:
                    continue
                o = r.offer
                if ev.amount == 0 or ev.amount < o.min_spend:
                    self.set_reward(r, CANCELLED, ZERO, ev.event_id)
                    continue
                v = self.value(o, ev.amount, self.used[o.id] - self.own(r))
                if v == 0:
                    self.set_reward(r, CANCELLED, ZERO, ev.event_id)
                else:
                    self.set_reward(r, CONFIRMED, v, ev.event_id)
        elif ev.kind == REVERSAL:  # R10
            if txn is None or txn.cleared:
                return
            for r in txn.rewards:
                if r.status == PENDING:
                    self.set_reward(r, CANCELLED, ZERO, ev.event_id)
        elif ev.kind == REFUND:  # R11
            if txn is None or not txn.cleared:
                return
            confirmed = [r for r in txn.rewards if r.status == CONFIRMED]
            if not confirmed:
                return  # no confirmed reward: changes nothing
            txn.refunded += ev.amount
            net = max(ZERO, txn.cleared_amount - txn.refunded)
            for r in confirmed:
                o = r.offer
                if net == 0 or net < o.min_spend:
                    self.set_reward(r, CANCELLED, ZERO, ev.event_id)
                    continue
                v = min(self.value(o, net, self.used[o.id] - self.own(r)), r.value)
                self.set_reward(r, CONFIRMED, v, ev.event_id)

    def process_line(self, raw_line: bytes, lineno: int, dlq: list):
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            self.reject(dlq, lineno, "INVALID_UTF8", None)
            return
        if text.strip() == "":
            return  # blank line: not an event
        try:
            # Project choice (docs/decisions.md): a repeated key is a malformed record.
            raw = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
            _check_unicode(raw)
        except ValueError:
            self.reject(dlq, lineno, "INVALID_JSON", None)
            return
        try:
            ev = validate_event(raw, self)
        except Rejected as e:
            self.reject(dlq, lineno, e.reason, raw)
            return
        key = (ev.card, ev.event_id)
        if key in self.seen:  # R2
            self.duplicate += 1
            return
        self.seen.add(key)
        self.processed += 1
        self.apply(ev)

    def reject(self, dlq: list, lineno: int, reason: str, raw):
        self.rejected += 1
        rec = {"line": lineno, "reason": reason}
        if isinstance(raw, dict):
            tok = raw.get("card_token")
            eid = raw.get("event_id")
            if reason == "PAN_DETECTED":
                rec["card_token_last4"] = tok[-4:]
                if isinstance(eid, str) and tok not in eid:
                    rec["event_id"] = eid
            else:
                if isinstance(eid, str):
                    rec["event_id"] = eid
                if isinstance(tok, str) and TOKEN_RE.fullmatch(tok):
                    rec["card_token"] = tok
        dlq.append(rec)

    # ---- section 6
    def ledger(self) -> dict:
        cards: dict[str, dict[str, dict[str, Decimal]]] = {}
        for r in self.rewards:
            if r.status not in (PENDING, CONFIRMED):
                continue
            part = "confirmed" if r.status == CONFIRMED else "pending"
            sums = cards.setdefault(r.card, {}).setdefault(part, {})
            sums[r.offer.unit] = sums.get(r.offer.unit, ZERO) + r.value
        out_cards = {}
        for card, parts in cards.items():
            out_parts = {}
            for part, sums in parts.items():
                kept = {}
                for unit, total in sums.items():
                    if total != 0:
                        digits = 0 if unit == "POINTS" else CURRENCY_MINOR[unit]
                        kept[unit] = fmt_units(total, digits)
                if kept:
                    out_parts[part] = kept
            if out_parts:
                out_cards[card] = out_parts
        out_offers = {}
        for o in self.offers:
            if self.live_count[o.id] > 0:
                out_offers[o.id] = {"used": fmt_units(self.used[o.id], o.digits),
                                    "rewarded_transactions": self.live_count[o.id]}
        return {"cards": out_cards, "offers": out_offers,
                "events": {"processed": self.processed, "duplicate": self.duplicate,
                           "rejected": self.rejected}}


def _check_unicode(v):
    """Lone surrogate escapes ("\\ud800") are not Unicode text: the line is not valid JSON."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("lone surrogate in a JSON string") from None
    elif isinstance(v, dict):
        for k, x in v.items():
            _check_unicode(k)
            _check_unicode(x)
    elif isinstance(v, list):
        for x in v:
            _check_unicode(x)


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _reject_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


# --------------------------------------------------------------------------- API / CLI

def run(offers_data, event_lines):
    """Pure entry point used by scenarios.py: returns (records, ledger, dead_letters).
    Raises OfferError on an invalid offer list."""
    engine = Engine(load_offers(offers_data))
    dlq: list = []
    for n, line in enumerate(event_lines, 1):
        engine.process_line(line, n, dlq)
    return engine.records, engine.ledger(), dlq


def split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def replay(args) -> int:
    try:
        with open(args.offers, "rb") as f:
            offers_bytes = f.read()
    except OSError as e:
        print(f"cardlink oracle: cannot read offers file: {e}", file=sys.stderr)
        return 1
    try:
        offers_data = json.loads(offers_bytes.decode("utf-8"), parse_constant=_reject_constant)
        _check_unicode(offers_data)
    except (UnicodeDecodeError, ValueError) as e:
        print(f"cardlink oracle: invalid offer file: not JSON: {e}", file=sys.stderr)
        return 2
    try:
        engine = Engine(load_offers(offers_data))
    except OfferError as e:
        print(f"cardlink oracle: invalid offer file: {e}", file=sys.stderr)
        return 2
    try:
        with open(args.events, "rb") as f:
            event_bytes = f.read()
    except OSError as e:
        print(f"cardlink oracle: cannot read events file: {e}", file=sys.stderr)
        return 1
    dlq: list = []
    for n, line in enumerate(split_lines(event_bytes), 1):
        engine.process_line(line, n, dlq)
    try:
        if args.rewards:
            with open(args.rewards, "w", encoding="utf-8") as f:
                for rec in engine.records:
                    f.write(json.dumps(rec) + "\n")
        if args.ledger:
            with open(args.ledger, "w", encoding="utf-8") as f:
                json.dump(engine.ledger(), f, indent=1, sort_keys=True)
                f.write("\n")
        if args.dead_letters:
            with open(args.dead_letters, "w", encoding="utf-8") as f:
                for rec in dlq:
                    f.write(json.dumps(rec) + "\n")
    except OSError as e:
        print(f"cardlink oracle: cannot write output: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="oracle.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rp = sub.add_parser("replay", help="replay an event file against an offer file")
    rp.add_argument("--offers", required=True)
    rp.add_argument("--events", required=True)
    rp.add_argument("--rewards")
    rp.add_argument("--ledger")
    rp.add_argument("--dead-letters", dest="dead_letters")
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    return replay(args)


if __name__ == "__main__":
    sys.exit(main())
