#!/usr/bin/env python3
"""Seeded random scenarios + differential runner: oracle.py versus a cardlink binary.

    python3 scenarios.py --cardlink PATH_TO_BINARY --seeds 200 [--start-seed N]
                         [--keep-failures DIR] [--no-shrink]
    python3 scenarios.py --check-example ../../shared/examples/basic [--cardlink BIN]

--cardlink is split like a shell command line, so `--cardlink "python3 oracle.py"`
runs the oracle against itself (which must give all-pass).

For each seed a small offer file and event stream are generated, both sides replay
them, and the exit code, the ledger (parsed JSON, exactly) and the reward records
(one multiset per event, in event order, every field) are compared. The closing line
is `oracle: N passed, M failed`; exit code 0 when everything agreed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import oracle  # noqa: E402

CURRENCY_DIGITS = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}
CURRENCY_SCALE = {"USD": 1, "EUR": 1, "JPY": 100, "KWD": 0.3}
NETWORKS = ["VISA", "MASTERCARD", "AMEX", "DISCOVER"]
MIDS = ["M1", "M2", "M3", "M4"]
MCCS = ["5812", "5411", "5999", "4111"]
COUNTRIES = ["US", "DE", "JP", "KW", "FR"]
DAYS = ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
OFFSETS = [0, 0, -240, 540, 330, -600, 840, -720, 180, 345, 60, -180]
BASE = datetime(2026, 5, 4, tzinfo=timezone.utc)  # a Monday
CARD_POOL = ["c1", "tok_2", "card.3", "u:4-x", "5", "4111111111111112", "Card_6"]
OFFER_ID_POOL = ["o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8", "A-fix", "b-pct",
                 "Zeta", "a|pipe", "p%ct", "\u00e9t\u00e9", "o10", "o9"]
PANS = ["4111111111111111", "5500000000000004", "4222222222222", "6011000990139424",
        "3530111333300000", "4000056655665556", "6304000000000000000"]


# --------------------------------------------------------------------------- generation

def money(rng: random.Random, cur: str, lo: float, hi: float) -> str:
    digits = CURRENCY_DIGITS[cur]
    scale = CURRENCY_SCALE[cur]
    units = rng.randint(int(lo * scale * 10 ** digits), int(hi * scale * 10 ** digits))
    s = format_units(units, digits)
    if digits and rng.random() < 0.1:  # fewer digits than allowed is still valid
        s = s.rstrip("0").rstrip(".") or "0"
    return s


def format_units(units: int, digits: int) -> str:
    if digits == 0:
        return str(units)
    whole, frac = divmod(units, 10 ** digits)
    return f"{whole}.{frac:0{digits}d}"


def scale_amount(s: str, cur: str, factor: float) -> str:
    digits = CURRENCY_DIGITS[cur]
    units = int(round(float(s) * 10 ** digits * factor))
    return format_units(max(units, 0), digits)


def render(dt: datetime, offset_min: int, rng: random.Random, frac: bool = False) -> str:
    local = dt.astimezone(timezone(timedelta(minutes=offset_min)))
    s = local.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        s += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
    if offset_min == 0 and rng.random() < 0.5:
        return s + "Z"
    sign = "+" if offset_min >= 0 else "-"
    a = abs(offset_min)
    return f"{s}{sign}{a // 60:02d}:{a % 60:02d}"


def random_instant(rng: random.Random) -> datetime:
    # on a 15-minute grid, so hour windows and validity bounds are hit exactly
    return BASE + timedelta(minutes=15 * rng.randrange(0, 9 * 24 * 4))


def subset(rng: random.Random, pool: list, lo: int = 1) -> list:
    k = rng.randint(lo, len(pool))
    return rng.sample(pool, k)


def gen_offers(rng: random.Random) -> list:
    n = rng.randint(2, 8)
    ids = rng.sample(OFFER_ID_POOL, n)
    offers = []
    fixed_pool = {"USD": ["0.50", "1", "2.00", "4.99", "5.00"], "EUR": ["1.00", "2.50", "4.99"],
                  "JPY": ["50", "100", "500"], "KWD": ["0.250", "1.5", "2.125"]}
    for oid in ids:
        cur = rng.choices(list(CURRENCY_DIGITS), weights=[50, 20, 15, 15])[0]
        o: dict = {"id": oid, "currency": cur}
        k = rng.random()
        if k < 0.45:
            o["reward"] = {"percent": rng.choice(["1", "5", "10", "12.5", "15", "33.333", "50",
                                                  "100", "7.25"])}
            cash = True
        elif k < 0.75:
            fx = rng.choice(fixed_pool[cur])
            if rng.random() < 0.05:  # more digits than the minor unit: pays the value cut toward zero
                fx = fx + "9" if "." in fx else fx + ".9"
            o["reward"] = {"fixed": fx}
            cash = True
        else:
            o["reward"] = {"points_per_unit": rng.choice(["1", "2", "0.5", "1.5", "3", "10"])}
            cash = False
        if rng.random() < 0.3:
            o["min_spend"] = money(rng, cur, 0, 60)
        if rng.random() < 0.3:
            o["max_reward"] = money(rng, cur, 0.5, 8) if cash else str(rng.choice([5, 20, 50, 150]))
        if rng.random() < 0.45:
            o["budget"] = money(rng, cur, 2, 20) if cash else str(rng.choice([0, 40, 100, 300, 1000]))
        if rng.random() < 0.4:
            m = {}
            if rng.random() < 0.6:
                m["mids"] = subset(rng, MIDS, 0)
            if rng.random() < 0.4:
                m["mccs"] = subset(rng, MCCS, 0)
            if rng.random() < 0.4:
                m["countries"] = subset(rng, COUNTRIES, 0)
            o["merchant"] = m
        if rng.random() < 0.3:
            o["networks"] = subset(rng, NETWORKS, 0)
        if rng.random() < 0.25:
            o["valid_from"] = render(random_instant(rng), rng.choice(OFFSETS), rng)
        if rng.random() < 0.25:
            o["valid_until"] = render(random_instant(rng), rng.choice(OFFSETS), rng)
        if rng.random() < 0.25:
            o["days"] = subset(rng, DAYS, 0)
        if rng.random() < 0.3:
            f = rng.randrange(0, 48) * 30
            u = rng.randrange(0, 48) * 30
            if f == u:
                u = (u + 90) % 1440
            o["hours"] = {"from": f"{f // 60:02d}:{f % 60:02d}", "until": f"{u // 60:02d}:{u % 60:02d}"}
        if rng.random() < 0.2:
            o["activation_required"] = True
        elif rng.random() < 0.1:
            o["activation_required"] = False
        if rng.random() < 0.25:
            o["max_per_card"] = rng.randint(1, 3)
        if rng.random() < 0.1:
            o["note"] = {"unknown": "field"}  # unknown fields are ignored
        if rng.random() < 0.1:
            o[rng.choice(["min_spend", "max_reward", "budget", "days", "hours", "networks"])] = None
        offers.append(o)
    return offers


INVALID_OFFER_MUTATIONS = [
    lambda o: o.update(reward={"percent": "0"}),
    lambda o: o.update(reward={"percent": "100.01"}),
    lambda o: o.update(reward={"fixed": "0.00"}),
    lambda o: o.update(reward={"points_per_unit": "0"}),
    lambda o: o.update(reward={"percent": "10", "fixed": "1.00"}),
    lambda o: o.update(reward={}),
    lambda o: o.update(reward={"percent": 10}),
    lambda o: o.update(id=""),
    lambda o: o.pop("currency"),
    lambda o: o.update(currency="XXX"),
    lambda o: o.update(currency="usd"),
    lambda o: o.update(hours={"from": "10:00", "until": "10:00"}),
    lambda o: o.update(hours={"from": "24:00", "until": "10:00"}),
    lambda o: o.update(days=["MONDAY"]),
    lambda o: o.update(networks=["visa"]),
    lambda o: o.update(max_per_card=0),
    lambda o: o.update(max_per_card="2"),
    lambda o: o.update(activation_required="yes"),
    lambda o: o.update(min_spend=5),
    lambda o: o.update(budget="-1"),
    lambda o: o.update(valid_from="yesterday"),
    lambda o: o.update(max_reward="abc"),
]


def gen_invalid_offers(rng: random.Random, offers: list) -> list:
    if rng.random() < 0.1:
        if rng.random() < 0.5:
            return {"offers": offers}  # not an array
        offers.append(dict(offers[0]))  # duplicate id
        return offers
    rng.choice(INVALID_OFFER_MUTATIONS)(rng.choice(offers))
    return offers


class EventGen:
    def __init__(self, rng: random.Random, offers: list):
        self.rng = rng
        self.offers = offers
        self.n = 0
        self.offer_currencies = sorted({o["currency"] for o in offers}) or ["USD"]
        self.bounds = self.boundary_times()

    def eid(self) -> str:
        self.n += 1
        return f"e{self.n}" if self.rng.random() < 0.9 else f"ev-\u00e9{self.n}"

    def boundary_times(self) -> list:
        """Timestamps exactly at (or just before) the offers' time bounds."""
        out = []
        for o in self.offers:
            for field in ("valid_from", "valid_until"):
                v = o.get(field)
                if isinstance(v, str):
                    out.append(("instant", datetime.fromisoformat(v)))
            h = o.get("hours")
            if isinstance(h, dict):
                for k in ("from", "until"):
                    out.append(("local", int(h[k][:2]) * 60 + int(h[k][3:])))
            if o.get("days"):
                out.append(("local", 0))
        return out

    def when(self) -> str:
        rng = self.rng
        if self.bounds and rng.random() < 0.3:
            what, v = rng.choice(self.bounds)
            off = rng.choice(OFFSETS)
            nudge = rng.choice(["exact", "exact", "second", "nano"])
            if what == "instant":
                t = v.astimezone(timezone(timedelta(minutes=off)))
            else:
                day = BASE.date() + timedelta(days=rng.randrange(0, 9))
                t = datetime(day.year, day.month, day.day, tzinfo=timezone(timedelta(minutes=off)))
                t += timedelta(minutes=v)
            if nudge != "exact":
                t -= timedelta(seconds=1)
            s = t.strftime("%Y-%m-%dT%H:%M:%S") + (".999999999" if nudge == "nano" else "")
            if off == 0 and rng.random() < 0.5:
                return s + "Z"
            sign = "+" if off >= 0 else "-"
            return f"{s}{sign}{abs(off) // 60:02d}:{abs(off) % 60:02d}"
        return render(random_instant(rng) + timedelta(seconds=rng.choice([0, 0, 0, 59, 1799])),
                      rng.choice(OFFSETS), rng, frac=rng.random() < 0.1)

    def merchant(self) -> dict:
        rng = self.rng
        m = {"mid": rng.choice(MIDS), "mcc": rng.choice(MCCS)}
        if rng.random() < 0.7:
            m["country"] = rng.choice(COUNTRIES)
        if rng.random() < 0.3:
            m["name"] = rng.choice(["Cafe", "Shop \u00fc", "Fuel"])
        return m

    def base(self, kind: str, card: str, txid: str | None) -> dict:
        ev = {"event_id": self.eid(), "kind": kind, "card_token": card, "occurred_at": self.when()}
        if txid is not None:
            ev["transaction_id"] = txid
        return ev

    def purchase(self, kind, card, txid, amount, cur, merchant, network) -> dict:
        ev = self.base(kind, card, txid)
        ev.update(network=network, amount=amount, currency=cur, merchant=dict(merchant))
        return ev

    def money_event(self, kind, card, txid, amount, cur) -> dict:
        ev = self.base(kind, card, txid)
        ev.update(amount=amount, currency=cur)
        return ev

    def story(self, card: str, txid: str) -> list:
        """One transaction's events, in order."""
        rng = self.rng
        cur = rng.choice(self.offer_currencies) if rng.random() < 0.85 else rng.choice(list(CURRENCY_DIGITS))
        r = rng.random()
        amt = money(rng, cur, 0, 120) if r < 0.85 else money(rng, cur, 0, 2) if r < 0.95 else "0"
        spends = [o["min_spend"] for o in self.offers
                  if o["currency"] == cur and isinstance(o.get("min_spend"), str)]
        if spends and rng.random() < 0.2:
            amt = rng.choice(spends)  # exactly at a threshold
        m = self.merchant()
        net = rng.choice(NETWORKS)
        evs = []
        shape = rng.random()
        cleared = None
        if shape < 0.15:
            # clearing without authorization
            cleared = amt
            evs.append(self.purchase("CLEARING", card, txid, amt, cur, m, net))
        else:
            evs.append(self.purchase("AUTHORIZATION", card, txid, amt, cur, m, net))
            if rng.random() < 0.1:  # re-auth of a known transaction
                evs.append(self.purchase("AUTHORIZATION", card, txid, money(rng, cur, 0, 120), cur, m, net))
            if rng.random() < 0.1:  # refund before clearing
                evs.append(self.money_event("REFUND", card, txid, scale_amount(amt, cur, 0.5), cur))
            r = rng.random()
            if r < 0.2:
                rev = self.base("AUTH_REVERSAL", card, txid)
                if rng.random() < 0.3:
                    rev.update(amount=amt, currency=cur)
                evs.append(rev)
                if rng.random() < 0.3:
                    evs.append(self.base("AUTH_REVERSAL", card, txid))
                if rng.random() < 0.3:  # clearing after a reversal
                    cleared = amt
                    evs.append(self.purchase("CLEARING", card, txid, amt, cur, m, net))
            elif r < 0.3:
                pass  # stays pending
            else:
                c = rng.random()
                if c < 0.45:
                    cleared = amt
                elif c < 0.65:
                    cleared = scale_amount(amt, cur, rng.choice([1.2, 1.5, 3]))  # tip
                elif c < 0.85:
                    cleared = scale_amount(amt, cur, rng.choice([0.8, 0.5, 0.1]))
                elif c < 0.93:
                    cleared = "0"
                elif c < 0.96 or not spends:
                    cleared = money(rng, cur, 0, 120)
                else:
                    cleared = rng.choice(spends)
                cm = m if rng.random() < 0.9 else self.merchant()
                evs.append(self.purchase("CLEARING", card, txid, cleared, cur, cm, net))
                if rng.random() < 0.1:
                    rev = self.base("AUTH_REVERSAL", card, txid)  # after clearing: no-op
                    evs.append(rev)
        if cleared is not None:
            if rng.random() < 0.1:  # second clearing
                evs.append(self.purchase("CLEARING", card, txid, money(rng, cur, 0, 120), cur, m, net))
            for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                f = rng.choice([0.01, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0, 1.3, 0])
                refund = scale_amount(cleared, cur, f)
                if spends and rng.random() < 0.15:  # net lands exactly on a min_spend
                    net = float(cleared) - float(rng.choice(spends))
                    refund = scale_amount(str(max(net, 0)), cur, 1)
                evs.append(self.money_event("REFUND", card, txid, refund, cur))
        return evs

    def activation(self, card: str) -> dict:
        ev = self.base("ACTIVATION", card, None)
        ev["offer_id"] = self.rng.choice([o["id"] for o in self.offers] + ["nope", ""])
        return ev

    def invalidate(self, ev: dict, txn_currency: dict) -> dict:
        """A rejected variant of a valid event (R1)."""
        rng = self.rng
        ev = json.loads(json.dumps(ev))
        kind = ev["kind"]
        muts = ["pan", "token", "event_id", "kind", "occurred_at", "null_required"]
        if kind != "ACTIVATION":
            muts.append("txid")
        if kind in ("AUTHORIZATION", "CLEARING", "REFUND"):
            muts += ["amount", "amount", "currency", "mismatch", "mismatch"]
        if kind in ("AUTHORIZATION", "CLEARING"):
            muts += ["network", "merchant"]
        if kind == "ACTIVATION":
            muts.append("offer_id")
        mut = rng.choice(muts)
        if mut == "pan":
            ev["card_token"] = rng.choice(PANS)
        elif mut == "token":
            ev["card_token"] = rng.choice(["", "c 1", "x" * 65, "c/1", 17, "\u00e9"])
        elif mut == "event_id":
            if rng.random() < 0.5:
                ev["event_id"] = rng.choice(["", 5, None])
            else:
                del ev["event_id"]
        elif mut == "kind":
            ev["kind"] = rng.choice(["PURCHASE", "authorization", "", None])
        elif mut == "occurred_at":
            t = ev["occurred_at"]
            ev["occurred_at"] = rng.choice([
                t[:19], t[:19] + "+0200", "2026-02-30T10:00:00Z",
                "2026-05-04T24:00:00Z", "2026-05-04T10:00Z", "1714000000", "2026-05-04T10:00:00+24:00",
                "26-05-04T10:00:00Z"])
        elif mut == "null_required":
            req = ["event_id", "kind", "card_token", "occurred_at"]
            if kind in ("AUTHORIZATION", "CLEARING"):
                req += ["network", "merchant", "amount", "currency", "transaction_id"]
            if kind == "ACTIVATION":
                req.append("offer_id")
            ev[rng.choice(req)] = None
        elif mut == "txid":
            ev["transaction_id"] = rng.choice(["", None, 42])
        elif mut == "amount":
            cur = ev["currency"]
            ev["amount"] = rng.choice({
                2: ["12.345", "-5", "1e3", 12.5, "", " 12", ".5", "5.", "+5", "1,5", "0x10"],
                0: ["500.0", "12.5", "-1", 500, "5e2", ""],
                3: ["1.2345", "-0.5", 1.5, "1.", ""]}[CURRENCY_DIGITS.get(cur, 2)])
        elif mut == "currency":
            ev["currency"] = rng.choice(["usd", "XXX", "XAU", "US", "", 840, "ABC"])
        elif mut == "mismatch":
            known = txn_currency.get((ev["card_token"], ev.get("transaction_id")))
            others = [c for c in CURRENCY_DIGITS if c != (known or ev["currency"])]
            ev["currency"] = rng.choice(others)
            # keep the amount valid for the new currency so only the mismatch (if any) counts
            ev["amount"] = money(rng, ev["currency"], 0, 50)
        elif mut == "network":
            ev["network"] = rng.choice(["visa", "JCB", "", None, 1])
        elif mut == "merchant":
            m = ev["merchant"]
            choice = rng.choice(["mcc", "mcc", "country", "nomid", "nomcc", "notobj", "midnum", "name"])
            if choice == "mcc":
                m["mcc"] = rng.choice(["581", "58123", "58a2", 5812, "\u0665812"])
            elif choice == "country":
                m["country"] = rng.choice(["us", "XX", "UK", "USA", 1, ""])
            elif choice == "nomid":
                del m["mid"]
            elif choice == "nomcc":
                del m["mcc"]
            elif choice == "midnum":
                m["mid"] = 123
            elif choice == "name":
                m["name"] = 7
            else:
                ev["merchant"] = rng.choice(["M1", ["M1"], 5])
        elif mut == "offer_id":
            ev["offer_id"] = rng.choice([None, 3, ["o1"]])
        return ev

    def ignored_fields(self, ev: dict) -> dict:
        """Fields not listed for a kind are ignored: garbage there keeps the event valid."""
        rng = self.rng
        kind = ev["kind"]
        if kind in ("REFUND", "AUTH_REVERSAL", "ACTIVATION"):
            field = rng.choice(["network", "merchant"])
            ev[field] = rng.choice(["garbage", 5, {"mcc": "x"}])
        if kind == "ACTIVATION" and rng.random() < 0.5:
            ev[rng.choice(["transaction_id", "amount", "currency"])] = rng.choice([7, "", "zz"])
        if kind in ("AUTHORIZATION", "CLEARING", "REFUND", "AUTH_REVERSAL"):
            if rng.random() < 0.5:
                ev["offer_id"] = rng.choice([5, None, "o1"])
        ev["extra_" + str(rng.randint(0, 9))] = {"ignored": True}
        return ev

    def generate(self) -> list:
        """The event stream, as a list of JSON lines (str)."""
        rng = self.rng
        cards = rng.sample(CARD_POOL, rng.randint(2, 4))
        stories = []
        for card in cards:
            txids = [f"t{i}" for i in range(1, rng.randint(2, 6))]
            if rng.random() < 0.15:
                txids.append(rng.choice(["t|1", "t%2", "t%7C"]))
            for txid in txids:
                stories.append(self.story(card, txid))
            for _ in range(rng.randint(0, 3)):
                stories.append([self.activation(card)])
            if rng.random() < 0.2:  # reversal / refund of an unknown transaction
                cur = rng.choice(self.offer_currencies)
                stories.append([self.base("AUTH_REVERSAL", card, "unknown"),
                                self.money_event("REFUND", card, "unknown", money(rng, cur, 1, 20), cur)])
        # interleave, keeping each story's order
        events = []
        live = [s for s in stories if s]
        while live:
            s = rng.choice(live)
            events.append(s.pop(0))
            if not s:
                live.remove(s)
        # decorate: duplicates, invalid events, ignored fields, cross-card event ids
        out: list = []
        txn_currency: dict = {}
        seen_ids: list = []
        for ev in events:
            key = (ev["card_token"], ev.get("transaction_id"))
            if ev["kind"] in ("AUTHORIZATION", "CLEARING") and key not in txn_currency:
                txn_currency[key] = ev["currency"]
            r = rng.random()
            if r < 0.06:
                out.append(self.invalidate(ev, txn_currency))  # replaces the valid event
                continue
            if r < 0.10:
                out.append(self.invalidate(ev, txn_currency))  # and then the valid one follows
            late_invalid = rng.random() < 0.04
            if rng.random() < 0.08:
                ev = self.ignored_fields(ev)
            if seen_ids and rng.random() < 0.04:
                ev["event_id"] = rng.choice(seen_ids)  # may be a duplicate (same card) or not
            out.append(ev)
            seen_ids.append(ev["event_id"])
            if rng.random() < 0.06:
                out.append(json.loads(json.dumps(ev)))  # exact duplicate (R2)
            if late_invalid:
                out.append(self.invalidate(ev, txn_currency))  # rejected, not a duplicate
        lines = [json.dumps(e, ensure_ascii=rng.random() < 0.5) for e in out]
        for _ in range(rng.choice([0, 0, 0, 1])):
            lines.insert(rng.randrange(len(lines) + 1),
                         rng.choice(["{not json", "[1, 2]", "\"AUTHORIZATION\"", "null", "{}"]))
        return lines


def generate(seed: int):
    """(offers_text, event_lines, offers_valid_expected)."""
    rng = random.Random(seed)
    offers = gen_offers(rng)
    events = EventGen(rng, offers).generate()
    invalid = rng.random() < 0.05
    if invalid:
        offers = gen_invalid_offers(rng, offers)
    return json.dumps(offers, ensure_ascii=False, indent=1), events, not invalid


# --------------------------------------------------------------------------- running

class Outcome:
    def __init__(self, rc, records, ledger, err=""):
        self.rc, self.records, self.ledger, self.err = rc, records, ledger, err


def run_oracle(offers_text: str, lines: list) -> Outcome:
    try:
        data = json.loads(offers_text)
        records, ledger, _ = oracle.run(data, [l.encode("utf-8") for l in lines])
    except (oracle.OfferError, ValueError) as e:
        return Outcome(2, None, None, str(e))
    return Outcome(0, records, ledger)


def write_scenario(d: str, offers_text: str, lines: list):
    with open(os.path.join(d, "offers.json"), "w", encoding="utf-8") as f:
        f.write(offers_text)
    with open(os.path.join(d, "events.jsonl"), "w", encoding="utf-8") as f:
        f.write("".join(l + "\n" for l in lines))


def run_binary(cmd: list, offers_text: str, lines: list, workdir: str) -> Outcome:
    write_scenario(workdir, offers_text, lines)
    paths = {k: os.path.join(workdir, f"cardlink.{k}") for k in ("rewards.jsonl", "ledger.json", "dlq.jsonl")}
    for p in paths.values():
        if os.path.exists(p):
            os.remove(p)
    argv = cmd + ["replay", "--offers", os.path.join(workdir, "offers.json"),
                  "--events", os.path.join(workdir, "events.jsonl"),
                  "--rewards", paths["rewards.jsonl"], "--ledger", paths["ledger.json"],
                  "--dead-letters", paths["dlq.jsonl"]]
    try:
        p = subprocess.run(argv, capture_output=True, timeout=120)
    except subprocess.TimeoutExpired:
        return Outcome("timeout", None, None, "timed out after 120 s")
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        return Outcome(p.returncode, None, None, err)
    records, ledger = [], None
    try:
        with open(paths["rewards.jsonl"], encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    records.append(json.loads(line))
        with open(paths["ledger.json"], encoding="utf-8") as f:
            ledger = json.load(f)
    except (OSError, ValueError) as e:
        return Outcome("bad-output", None, None, f"{e}\n{err}")
    return Outcome(0, records, ledger, err)


def group(records: list) -> list:
    """Records grouped per event (consecutive runs of card_token+event_id), each a sorted multiset."""
    groups = []
    prev = object()
    for r in records:
        key = (r.get("card_token"), r.get("event_id"))
        if key != prev:
            groups.append((key, []))
            prev = key
        groups[-1][1].append(json.dumps(r, sort_keys=True, ensure_ascii=False))
    return [(k, sorted(v)) for k, v in groups]


def ledger_diff(a, b, path="ledger") -> list:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"  {path}.{k}: oracle has nothing, cardlink {json.dumps(b[k], ensure_ascii=False)}")
            elif k not in b:
                out.append(f"  {path}.{k}: oracle {json.dumps(a[k], ensure_ascii=False)}, cardlink has nothing")
            else:
                out += ledger_diff(a[k], b[k], f"{path}.{k}")
        return out
    if a != b or type(a) is not type(b):
        return [f"  {path}: oracle {json.dumps(a, ensure_ascii=False)}, cardlink {json.dumps(b, ensure_ascii=False)}"]
    return []


def compare(o: Outcome, c: Outcome) -> list:
    """A short diff, empty when both sides agree."""
    if o.rc != c.rc:
        return [f"  exit code: oracle {o.rc}, cardlink {c.rc}",
                f"  oracle says: {o.err.strip()[:300]}", f"  cardlink says: {c.err.strip()[:300]}"]
    if o.rc != 0:
        return []
    diff = ledger_diff(o.ledger, c.ledger)
    go, gc = group(o.records), group(c.records)
    for i in range(max(len(go), len(gc))):
        a = go[i] if i < len(go) else None
        b = gc[i] if i < len(gc) else None
        if a != b:
            diff.append(f"  reward records differ at event group #{i + 1}:")
            for name, g in (("oracle", a), ("cardlink", b)):
                if g is None:
                    diff.append(f"    {name}: (no more records)")
                else:
                    diff.append(f"    {name}: event {g[0][1]!r} of card {g[0][0]!r}")
                    for r in g[1]:
                        diff.append(f"      {r}")
            break
    return diff


def shrink(cmd: list, offers_text: str, lines: list, workdir: str, budget: int = 400):
    """Greedy removal of events, then offers, while the two sides still disagree."""
    def fails(ot, ls):
        return bool(compare(run_oracle(ot, ls), run_binary(cmd, ot, ls, workdir)))

    runs = 0
    chunk = max(1, len(lines) // 2)
    while chunk >= 1 and runs < budget:
        i, changed = 0, False
        while i < len(lines) and runs < budget:
            trial = lines[:i] + lines[i + chunk:]
            runs += 1
            if trial and fails(offers_text, trial):
                lines, changed = trial, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    try:
        offers = json.loads(offers_text)
    except ValueError:
        return offers_text, lines
    if isinstance(offers, list):
        i = 0
        while i < len(offers) and runs < budget:
            trial = offers[:i] + offers[i + 1:]
            t_text = json.dumps(trial, ensure_ascii=False, indent=1)
            runs += 1
            if fails(t_text, lines):
                offers = trial
            else:
                i += 1
        offers_text = json.dumps(offers, ensure_ascii=False, indent=1)
    return offers_text, lines


def keep(dir_: str, seed: int, offers_text: str, lines: list, o: Outcome, diff: list, tag: str = ""):
    d = os.path.join(dir_, f"seed-{seed}{tag}")
    os.makedirs(d, exist_ok=True)
    write_scenario(d, offers_text, lines)
    if o.rc == 0:
        with open(os.path.join(d, "oracle.rewards.jsonl"), "w", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in o.records))
        with open(os.path.join(d, "oracle.ledger.json"), "w", encoding="utf-8") as f:
            json.dump(o.ledger, f, indent=1, sort_keys=True, ensure_ascii=False)
    with open(os.path.join(d, "diff.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(diff) + "\n")
    return d


def check_example(example_dir: str, cmd: list | None) -> int:
    with open(os.path.join(example_dir, "offers.json"), encoding="utf-8") as f:
        offers_text = f.read()
    with open(os.path.join(example_dir, "events.jsonl"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    with open(os.path.join(example_dir, "ledger.json"), encoding="utf-8") as f:
        want_ledger = json.load(f)
    with open(os.path.join(example_dir, "rewards.jsonl"), encoding="utf-8") as f:
        want = [json.loads(l) for l in f if l.strip()]

    def strip_ids(recs):  # the example README leaves reward_id values free
        return [{k: v for k, v in r.items() if k != "reward_id"} for r in recs]

    expected = Outcome(0, strip_ids(want), want_ledger)
    sides = [("oracle", run_oracle(offers_text, lines))]
    if cmd:
        with tempfile.TemporaryDirectory() as tmp:
            sides.append(("cardlink", run_binary(cmd, offers_text, lines, tmp)))
    passed = failed = 0
    for name, got in sides:
        if got.rc == 0:
            got = Outcome(0, strip_ids(got.records), got.ledger)
        diff = compare(expected, got)
        if diff:
            failed += 1
            print(f"example {example_dir}: {name} differs (\"oracle\" below = expected files)")
            print("\n".join(diff))
        else:
            passed += 1
            print(f"example {example_dir}: {name} matches")
    print(f"oracle: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cardlink", help="the cardlink binary (a command line; split like a shell would)")
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--start-seed", type=int, default=1)
    ap.add_argument("--keep-failures", metavar="DIR",
                    default=os.path.join(tempfile.gettempdir(), "cardlink-oracle-failures"),
                    help="where failing scenarios are kept (default: %(default)s)")
    ap.add_argument("--no-shrink", action="store_true", help="do not shrink kept failures")
    ap.add_argument("--check-example", metavar="DIR",
                    help="check the oracle (and --cardlink if given) against a worked example")
    ap.add_argument("--print", type=int, metavar="SEED", help="print one generated scenario and exit")
    args = ap.parse_args()

    if args.print is not None:
        offers_text, lines, _ = generate(args.print)
        print(offers_text)
        print("\n".join(lines))
        return 0
    cmd = shlex.split(args.cardlink) if args.cardlink else None
    if args.check_example:
        return check_example(args.check_example, cmd)
    if not cmd:
        ap.error("--cardlink is required")

    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="cardlink-oracle-")
    try:
        for seed in range(args.start_seed, args.start_seed + args.seeds):
            offers_text, lines, _ = generate(seed)
            o = run_oracle(offers_text, lines)
            c = run_binary(cmd, offers_text, lines, tmp)
            diff = compare(o, c)
            if not diff:
                passed += 1
                continue
            failed += 1
            print(f"seed {seed}: MISMATCH ({len(lines)} events)")
            print("\n".join(diff))
            if args.keep_failures:
                d = keep(args.keep_failures, seed, offers_text, lines, o, diff)
                # the binary's own outputs for the full scenario
                for name in ("cardlink.rewards.jsonl", "cardlink.ledger.json", "cardlink.dlq.jsonl"):
                    src = os.path.join(tmp, name)
                    if os.path.exists(src):
                        shutil.copy(src, os.path.join(d, name))
                with open(os.path.join(d, "cardlink.stderr"), "w", encoding="utf-8") as f:
                    f.write(c.err)
                print(f"  kept in {d}")
                if not args.no_shrink:
                    s_offers, s_lines = shrink(cmd, offers_text, lines, tmp)
                    so, sc = run_oracle(s_offers, s_lines), run_binary(cmd, s_offers, s_lines, tmp)
                    sdiff = compare(so, sc)
                    if sdiff:
                        sd = keep(args.keep_failures, seed, s_offers, s_lines, so, sdiff, "-min")
                        print(f"  shrunk to {len(s_lines)} events in {sd}:")
                        print("\n".join("  " + l for l in sdiff))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"oracle: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
