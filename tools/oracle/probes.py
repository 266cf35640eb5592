#!/usr/bin/env python3
"""Named edge probes: small cases where the contract is silent or easy to misread.

    python3 probes.py --cardlink PATH_TO_BINARY [--only NAME]

Each probe runs on the oracle and on the binary. The runner prints `agree` or
`DIFFER` and both sides' results. A DIFFER here calls for a decision, which belongs
in README.md, rather than an automatic fix. Closing line: `probes: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import oracle  # noqa: E402
import scenarios  # noqa: E402

OFFERS = [
    {"id": "pct", "currency": "USD", "reward": {"percent": "10"}},
    {"id": "pts", "currency": "USD", "reward": {"points_per_unit": "1"}, "min_spend": "1.00"},
    {"id": "kw", "currency": "KWD", "reward": {"fixed": "1.5"}},
]
T = "2026-05-04T12:00:00Z"
M = {"mid": "M1", "mcc": "5812"}


def ev(eid, kind, txid="t1", card="c1", **kw) -> dict:
    e = {"event_id": eid, "kind": kind, "card_token": card, "occurred_at": T}
    if txid is not None:
        e["transaction_id"] = txid
    if kind in ("AUTHORIZATION", "CLEARING"):
        e.update(network="VISA", merchant=dict(M), amount="20.00", currency="USD")
    if kind == "REFUND":
        e.update(amount="5.00", currency="USD")
    e.update(kw)
    return e


def j(*events) -> list:
    return [x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in events]


def auth_at(ts):
    return j(ev("1", "AUTHORIZATION", occurred_at=ts))


def offers_with(**fields) -> list:
    o = {"id": "x", "currency": "USD", "reward": {"percent": "10"}}
    o.update(fields)
    return [o]


A = ev("1", "AUTHORIZATION")
PROBES = {
    # --- timestamps (RFC 3339 details)
    "ts_space_separator": (OFFERS, auth_at("2026-05-04 12:00:00Z")),
    "ts_lowercase_t": (OFFERS, auth_at("2026-05-04t12:00:00Z")),
    "ts_lowercase_z": (OFFERS, auth_at("2026-05-04T12:00:00z")),
    "ts_leap_second": (OFFERS, auth_at("2026-06-30T23:59:60Z")),
    "ts_minus_zero_offset": (OFFERS, auth_at("2026-05-04T12:00:00-00:00")),
    "ts_12_fraction_digits": (OFFERS, auth_at("2026-05-04T12:00:00.123456789012Z")),
    "ts_no_seconds": (OFFERS, auth_at("2026-05-04T12:00Z")),
    "ts_offset_without_colon": (OFFERS, auth_at("2026-05-04T12:00:00+0200")),
    "ts_valid_until_nanosecond": (
        offers_with(valid_until="2026-05-04T12:00:00.000000001Z"), auth_at("2026-05-04T12:00:00Z")),
    "ts_valid_from_other_offset": (
        offers_with(valid_from="2026-05-04T14:00:00+02:00"), auth_at("2026-05-04T11:59:59.999999999Z")),
    # --- input lines
    "blank_line": (OFFERS, ["", "   "] + j(A)),
    "crlf_line_end": (OFFERS, [j(A)[0] + "\r"]),
    "utf8_bom_first_line": (OFFERS, ["\ufeff" + j(A)[0]]),
    "duplicate_json_key": (OFFERS, [j(A)[0][:-1] + ', "amount": "30.00"}']),
    "lone_surrogate_escape": (OFFERS, [j(A)[0].replace('"event_id": "1"', '"event_id": "\\ud800"')]),
    # --- fields that R1 lists as optional/ignored
    "reversal_garbage_amount": (OFFERS, j(A, ev("2", "AUTH_REVERSAL", amount="x", currency="???"))),
    "reversal_numeric_amount": (OFFERS, j(A, ev("2", "AUTH_REVERSAL", amount=5))),
    "merchant_name_number": (OFFERS, j(ev("1", "AUTHORIZATION", merchant={"mid": "M1", "mcc": "5812", "name": 5}))),
    "merchant_empty_mid": (OFFERS, j(ev("1", "AUTHORIZATION", merchant={"mid": "", "mcc": "5812"}))),
    "merchant_unknown_field": (OFFERS, j(ev("1", "AUTHORIZATION", merchant={"mid": "M", "mcc": "5812", "x": 1}))),
    "token_64_chars": (OFFERS, j(ev("1", "AUTHORIZATION", card="a" * 64))),
    "token_13_zeros_is_luhn": (OFFERS, j(ev("1", "AUTHORIZATION", card="0" * 13))),
    "amount_leading_zeros": (OFFERS, j(ev("1", "AUTHORIZATION", amount="0012.50"))),
    "amount_huge": (OFFERS, j(ev("1", "AUTHORIZATION", amount="99999999999999999999999999999999.99"))),
    "activation_empty_offer_id": (OFFERS, j(ev("1", "ACTIVATION", txid=None, offer_id=""))),
    # --- magnitudes (the contract sets no upper bound on amounts)
    "amount_times_points_overflows_28_digits": (
        [{"id": "p", "currency": "USD", "reward": {"points_per_unit": "1000000"}}],
        j(ev("1", "CLEARING", amount="99999999999999999999999.99"))),
    "points_sum_overflows_28_digits": (
        [{"id": "p", "currency": "USD", "reward": {"points_per_unit": "1"}}],
        j(ev("1", "CLEARING", amount="40000000000000000000000000000"),
          ev("2", "CLEARING", txid="t2", amount="40000000000000000000000000000"))),
    # --- transaction state
    "second_clearing_other_currency_no_auth": (OFFERS, j(
        ev("1", "CLEARING"), ev("2", "CLEARING", currency="KWD", amount="1.000"))),
    "second_auth_other_currency": (OFFERS, j(A, ev("2", "AUTHORIZATION", currency="KWD", amount="1.000"))),
    "refund_other_currency_before_clearing": (OFFERS, j(A, ev("2", "REFUND", currency="KWD", amount="1.000"))),
    "refund_before_clearing_then_net": (OFFERS, j(
        A, ev("2", "REFUND", amount="15.00"), ev("3", "CLEARING"), ev("4", "REFUND", amount="1.00"))),
    "refund_after_all_cancelled": (OFFERS, j(
        A, ev("2", "CLEARING"), ev("3", "REFUND", amount="20.00"), ev("4", "REFUND", amount="1.00"))),
    "confirmed_zero_then_below_min": (
        [{"id": "one", "currency": "USD", "reward": {"percent": "1"}, "min_spend": "0.20"}],
        j(A, ev("2", "CLEARING"), ev("3", "REFUND", amount="19.50"), ev("4", "REFUND", amount="0.40"))),
    "reversal_then_clearing": (OFFERS, j(A, ev("2", "AUTH_REVERSAL"), ev("3", "CLEARING"), ev("4", "REFUND"))),
    "duplicate_after_mismatch_copy": (OFFERS, j(
        A, ev("2", "CLEARING"), ev("2", "CLEARING", currency="KWD", amount="1.000"))),
    "r11_budget_freed_then_refund": (
        [{"id": "b", "currency": "USD", "reward": {"percent": "10"}, "budget": "3.00"}],
        j(ev("1", "AUTHORIZATION", card="a"), ev("2", "CLEARING", card="b"),
          ev("3", "AUTH_REVERSAL", card="a"), ev("4", "REFUND", card="b", amount="0.10"))),
    # --- offers
    "offer_fixed_more_digits": (offers_with(reward={"fixed": "4.999"}), j(A)),
    "offer_budget_more_digits": (offers_with(budget="1.005"), j(A)),
    "offer_min_spend_more_digits": (offers_with(min_spend="20.001"), j(A)),
    "offer_max_reward_more_digits": (offers_with(max_reward="1.999"), j(A)),
    "offer_mccs_bad_item": (offers_with(merchant={"mccs": ["58"]}), j(A)),
    "offer_countries_bad_item": (offers_with(merchant={"countries": ["XX"]}), j(A)),
    "offer_countries_lowercase": (offers_with(merchant={"countries": ["us"]}), j(A)),
    "offer_networks_unknown": (offers_with(networks=["JCB"]), j(A)),
    "offer_reward_extra_key": (offers_with(reward={"percent": "10", "note": "x"}), j(A)),
    "offer_reward_other_null": (offers_with(reward={"percent": "10", "fixed": None}), j(A)),
    "offer_hours_missing_until": (offers_with(hours={"from": "10:00"}), j(A)),
    "offer_hours_single_digit": (offers_with(hours={"from": "9:00", "until": "13:00"}), j(A)),
    "offer_hours_24_00": (offers_with(hours={"from": "10:00", "until": "24:00"}), j(A)),
    "offer_max_per_card_float": (offers_with(max_per_card=1.0), j(A)),
    "offer_max_per_card_huge": (offers_with(max_per_card=2 ** 64), j(A)),
    "offer_percent_trailing_point": (offers_with(reward={"percent": "10."}), j(A)),
    "offer_percent_leading_point": (offers_with(reward={"percent": ".5"}), j(A)),
    "offer_percent_exponent": (offers_with(reward={"percent": "1e1"}), j(A)),
    "offer_percent_100_000": (offers_with(reward={"percent": "100.000"}), j(A)),
    "offer_decimal_number": (offers_with(min_spend=5), j(A)),
    "offer_valid_from_space": (offers_with(valid_from="2026-05-01 00:00:00Z"), j(A)),
    "offer_days_empty": (offers_with(days=[]), j(A)),
    "offer_days_lowercase": (offers_with(days=["mon"]), j(A)),
    "offer_activation_null": (offers_with(activation_required=None), j(A)),
    "offer_id_non_string": (offers_with(id=7), j(A)),
    "offer_merchant_null_list": (offers_with(merchant={"mids": None}), j(A)),
    "offer_currency_xau": (offers_with(currency="XAU"), j(A)),
    "offer_file_empty_array": ([], j(A)),
    "offer_ids_byte_order_tie": (
        [{"id": "\uff61", "currency": "USD", "reward": {"fixed": "1.00"}},
         {"id": "\U00010000", "currency": "USD", "reward": {"fixed": "1.00"}}], j(A)),
    "event_country_absent_offer_lists": (offers_with(merchant={"countries": ["US"]}), j(A)),
}


def summary(o: scenarios.Outcome) -> str:
    if o.rc != 0:
        return f"exit {o.rc}: {o.err.strip().splitlines()[-1][:160] if o.err.strip() else ''}"
    e = o.ledger["events"]
    recs = "; ".join(f"{r['event_id']}:{r['offer_id']} {r['status']} {r['value']} ({r['delta']})"
                     for r in o.records)
    return f"processed={e['processed']} duplicate={e['duplicate']} rejected={e['rejected']} | {recs or 'no records'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cardlink", required=True)
    ap.add_argument("--only")
    args = ap.parse_args()
    cmd = shlex.split(args.cardlink)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (offers, lines) in PROBES.items():
            if args.only and args.only != name:
                continue
            offers_text = json.dumps(offers, ensure_ascii=False)
            o = scenarios.run_oracle(offers_text, lines)
            c = scenarios.run_binary(cmd, offers_text, lines, tmp)
            diff = scenarios.compare(o, c)
            if diff:
                failed += 1
                print(f"DIFFER {name}\n  oracle:   {summary(o)}\n  cardlink: {summary(c)}")
            else:
                passed += 1
                print(f"agree  {name}: {summary(o)}")
    print(f"probes: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
