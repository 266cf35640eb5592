#!/usr/bin/env python3
"""Builds the seed corpora of the fuzz targets from the project's fixtures.

Writes fuzz/corpus/<target>/seed-<sha1> files (idempotent: the same input
gives the same file names; files libFuzzer added are left alone). Protobuf
seeds are encoded here by hand (no protobuf package needed): the wire
format of proto/cardlink/v1/cardlink.proto is small.

Usage: python3 fuzz/seeds.py [ROOT]   (ROOT: the repository, default ..)
"""

import hashlib
import json
import os
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
FUZZ = os.path.join(ROOT, "fuzz")
FIXTURES = os.path.join(ROOT, "crates", "cardlink", "tests", "fixtures")
SHARED = os.path.join(ROOT, "..", "shared", "examples")

KINDS = {"AUTHORIZATION": 1, "CLEARING": 2, "AUTH_REVERSAL": 3, "REFUND": 4, "ACTIVATION": 5}
NETWORKS = {"VISA": 1, "MASTERCARD": 2, "AMEX": 3, "DISCOVER": 4}
STATUS = {"PENDING": 1, "CONFIRMED": 2, "CANCELLED": 3}


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(tag, data):
    return varint(tag << 3 | 2) + varint(len(data)) + data


def field_str(tag, text):
    return field_bytes(tag, text.encode("utf-8"))


def field_varint(tag, n):
    return varint(tag << 3) + varint(n)


def card_event(e):
    """cardlink.v1.CardEvent from the contract's JSON form (what fits)."""
    out = b""
    strings = {"event_id": 1, "card_token": 3, "occurred_at": 4, "transaction_id": 6,
               "amount": 7, "currency": 8, "offer_id": 10}
    for name, tag in strings.items():
        if isinstance(e.get(name), str):
            out += field_str(tag, e[name])
    if isinstance(e.get("kind"), str) and e["kind"] in KINDS:
        out += field_varint(2, KINDS[e["kind"]])
    if isinstance(e.get("network"), str) and e["network"] in NETWORKS:
        out += field_varint(5, NETWORKS[e["network"]])
    m = e.get("merchant")
    if isinstance(m, dict):
        body = b""
        for name, tag in {"mid": 1, "mcc": 2, "country": 3, "name": 4}.items():
            if isinstance(m.get(name), str):
                body += field_str(tag, m[name])
        out += field_bytes(9, body)
    return out


def offer(o):
    """cardlink.v1.Offer from the contract's JSON form (what fits)."""
    out = b""
    for name, tag in {"id": 1, "currency": 2}.items():
        if isinstance(o.get(name), str):
            out += field_str(tag, o[name])
    r = o.get("reward") or {}
    for name, tag in {"percent": 3, "fixed": 4, "points_per_unit": 5}.items():
        if isinstance(r.get(name), str):
            out += field_str(tag, r[name])
            break
    m = o.get("merchant")
    if isinstance(m, dict):
        body = b""
        for name, tag in {"mids": 1, "mccs": 2, "countries": 3}.items():
            for x in m.get(name) or []:
                body += field_str(tag, x)
        out += field_bytes(6, body)
    for x in o.get("networks") or []:
        out += field_str(7, x)
    for name, tag in {"min_spend": 8, "max_reward": 9, "valid_from": 10, "valid_until": 11}.items():
        if isinstance(o.get(name), str):
            out += field_str(tag, o[name])
    for x in o.get("days") or []:
        out += field_str(12, x)
    h = o.get("hours")
    if isinstance(h, dict):
        out += field_bytes(13, field_str(1, h.get("from", "")) + field_str(2, h.get("until", "")))
    if isinstance(o.get("activation_required"), bool):
        out += field_varint(14, int(o["activation_required"]))
    if isinstance(o.get("max_per_card"), int):
        out += field_varint(15, o["max_per_card"])
    if isinstance(o.get("budget"), str):
        out += field_str(16, o["budget"])
    return out


def card_state(seen, activations, transactions):
    """cardlink.v1.CardState; transactions: (id, auth_cur, cleared, cleared_cur, net, [(offer, status, value)])."""
    out = b"".join(field_str(1, s) for s in seen) + b"".join(field_str(2, a) for a in activations)
    for tid, auth, cleared, cleared_cur, net, rewards in transactions:
        t = field_str(1, tid)
        if auth:
            t += field_str(2, auth)
        if cleared is not None:
            t += field_str(3, cleared) + field_str(4, cleared_cur)
        t += field_str(5, net)
        for oid, status, value in rewards:
            t += field_bytes(6, field_str(1, oid) + field_varint(2, STATUS[status]) + field_str(3, value))
        out += field_bytes(3, t)
    return out


def read_lines(path, limit=None):
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        lines = [l.rstrip(b"\r\n") for l in f if l.strip()]
    return lines[:limit] if limit else lines


def read(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return f.read()


def write(target, data):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)


def main():
    event_files = [os.path.join(FIXTURES, "basic", "events.jsonl"), os.path.join(SHARED, "basic", "events.jsonl")]
    lines = [l for p in event_files for l in read_lines(p)]
    lines += read_lines(os.path.join(FIXTURES, "simulated", "events.jsonl"), 400)
    catalogue = os.path.join(FIXTURES, "malformed", "catalogue.jsonl")
    bad = read_lines(catalogue)
    events = []
    for line in lines + bad:
        write("json_event", line)
        try:
            e = json.loads(line)
        except (ValueError, RecursionError):  # the catalogue's bad lines
            continue
        if not isinstance(e, dict):
            continue
        try:
            pb = card_event(e)
        except UnicodeEncodeError:  # a lone surrogate escape: JSON only
            continue
        events.append(e)
        write("proto_event", pb)
    # The protobuf catalogue's records, whole (its last one is cut short).
    data = read(os.path.join(FIXTURES, "malformed", "catalogue.pb")) or b""
    pos = 0
    while pos < len(data):
        n, shift = 0, 0
        while pos < len(data):
            b = data[pos]
            pos += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        write("proto_event", data[pos:pos + n])
        pos += n
    # The replay stream: a JSON Lines file (first byte 0) or a delimited
    # protobuf file (first byte 1), small and medium.
    for n in (8, 60, 400):
        chunk = events[:n]
        write("replay_stream", b"\x00" + b"\n".join(json.dumps(e).encode() for e in chunk) + b"\n")
        write("replay_stream", b"\x01" + b"".join(varint(len(m)) + m for m in map(card_event, chunk)))
    # The catalogue's small cases as one stream (its 60 KiB ones would only
    # slow every execution down; the single-record targets have them).
    write("replay_stream", b"\x00" + b"\n".join(l for l in bad if len(l) < 2048) + b"\n")
    offer_files = [os.path.join(FIXTURES, d, "offers.json") for d in ("basic", "simulated")]
    offer_files.append(os.path.join(SHARED, "basic", "offers.json"))
    offers = []
    for p in offer_files:
        data = read(p)
        if data is None:
            continue
        write("offer_file", data)
        offers += json.loads(data)
    write("offer_file", json.dumps(offers[:12]).encode())
    for o in offers[:80]:
        key = o["id"].encode()[:255]
        write("offer_record", b"\x00\x00" + json.dumps(o).encode())
        write("offer_record", bytes([2, len(key)]) + key + json.dumps(o).encode())
        write("offer_record", bytes([3, len(key)]) + key + offer(o))
        write("offer_record", bytes([6, len(key)]) + key)
    for state in [
        card_state(["1", "2", "3"], [], [("t1", "USD", "40.00", "USD", "5.00", [("b-pct", "CONFIRMED", "0.75"),
                                                                                 ("pts", "CANCELLED", "0")])]),
        card_state(["e-1"], ["act"], [("t2", "USD", None, None, "0", [("a-fix", "PENDING", "4.99"),
                                                                      ("pts", "PENDING", "66")])]),
        card_state(["x"], [], [("tj", None, "500", "JPY", "500", [("jp", "CONFIRMED", "50"),
                                                                  ("gone", "CONFIRMED", "1")])]),
        card_state([], [], []),
    ]:
        write("card_state", state)
    configs = [
        b"",
        b'[kafka]\nbootstrap = "127.0.0.1:19092"\n[kafka.security]\nprotocol = "SASL_SSL"\n'
        b'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "cardlink"\nsasl_password = "s3cret"\n'
        b'[kafka.options]\n"socket.keepalive.enable" = "true"\n"ssl.key.password" = "k"\n'
        b'[topics]\nevents = "card-events"\npartitions = 6\n[formats]\nevents = "json"\n'
        b'[pipeline]\ngroup_id = "cardlink"\ninstance_id = "0"\ncommit_max_records = 20000\ncommit_max_ms = 25\n',
        b'[topics]\nevents = "e"\noffers = "o"\nrewards = "r"\ndead_letters = "d"\nstate = "s"\n'
        b'partitions = 3\noffers_partitions = 1\nreplication_factor = 1\nmin_insync_replicas = 1\ncreate = false\n'
        b'[pipeline]\nstatic_membership = false\ntransaction_timeout_ms = 10000\nsession_timeout_ms = 6000\n'
        b'\x00127.0.0.1:1\nSSL\n\n\n\n\n\n\n\n\n\n7\n',
    ]
    for c in configs:
        write("config_toml", c)


if __name__ == "__main__":
    main()
