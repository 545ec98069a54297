#!/usr/bin/env python3
"""Independent check of crates/tresor-crypto/tests/vectors.json, written from docs/FORMAT.md
alone (no tresor code): KDFs, key headers, HKDF subkeys, blind tokens, record AAD, sealed
records, the record codec (formats 1, 2 and 3, Padmé), order keys, and the rotation wrap.

Needs: cryptography, argon2-cffi, blake3 (`cargo xtask vectors` installs them if missing).
Usage: verify.py [vectors.json]   exit status 0 = every vector reproduced.
"""
import hashlib
import json
import re
import struct
import sys
from pathlib import Path

import blake3
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

checked = 0


def check(cond, what):
    global checked
    if not cond:
        raise SystemExit(f"MISMATCH: {what}")
    checked += 1


def h(s):
    return bytes.fromhex(s)


def hkdf(salt, ikm, info):  # FORMAT 1.4: HKDF-SHA256, L = 32
    return HKDF(algorithm=SHA256(), length=32, salt=salt or None, info=info).derive(ikm)


def kdf(kdf_id, params, secret, salt):  # FORMAT 1.3
    if kdf_id == 1:
        m, t, p = params
        return hash_secret_raw(secret, salt, time_cost=t, memory_cost=m, parallelism=p,
                               hash_len=32, type=Type.ID, version=19)
    if kdf_id == 2:
        return hashlib.pbkdf2_hmac("sha512", secret, salt, params[0], 32)
    if kdf_id == 3:
        return hkdf(salt, secret, b"tresor/v1/raw-kek")
    raise ValueError(kdf_id)


def open_sealed(key, aad, sealed):  # FORMAT 1.7: nonce (12) ‖ ct ‖ tag (16)
    nonce, body = sealed[:12], sealed[12:]
    plain = AESGCM(key).decrypt(nonce, body, aad)
    check(AESGCM(key).encrypt(nonce, plain, aad) == body, "re-encryption")
    return plain


def unlock(header, secret):  # FORMAT 1.3
    check(len(header) == 90 and header[0] == 1, "header length/version")
    kdf_id = header[1]
    params = struct.unpack("<III", header[2:14])
    salt = header[14:30]
    kek = kdf(kdf_id, params, secret, salt)
    return open_sealed(kek, b"tresor/v1/dek" + header[:30], header[30:])


def token(index_key, domain, ident):  # FORMAT 1.5
    d = domain.encode()
    return blake3.blake3(bytes([len(d)]) + d + ident.encode(), key=index_key).digest(length=16)


class Reader:  # FORMAT 1.8: bincode 2 standard config
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError("truncated")
        out = self.b[self.i:self.i + n]
        self.i += n
        return out

    def varint(self):
        first = self.take(1)[0]
        if first < 251:
            return first
        size = {251: 2, 252: 4, 253: 8}[first]
        return int.from_bytes(self.take(size), "little")

    def string(self):
        return self.take(self.varint()).decode("utf-8")

    def zigzag(self):
        v = self.varint()
        return (v >> 1) ^ -(v & 1)


def padme(length):  # FORMAT 1.8, format 2
    length = max(length, 64)
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


class CompactReader(Reader):  # FORMAT 1.8, format 3: LEB128 and UUID-prefixed texts
    def varint(self):
        v, shift = 0, 0
        for n in range(10):
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                check(b != 0 or n == 0, "minimal LEB128")
                check(v < 1 << 64, "LEB128 within 64 bits")
                return v
        raise ValueError("LEB128 over 10 bytes")

    def text(self):
        kind = self.take(1)[0]
        if kind == 0:
            s = self.string()
            check(UUID.match(s) is None, "a UUID-prefixed text is kind 1")
            return s
        check(kind == 1, "text kind 0 or 1")
        h = self.take(16).hex()
        return "-".join([h[:8], h[8:12], h[12:16], h[16:20], h[20:]]) + self.string()


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def decode_compact(record):
    r = CompactReader(record[1:])
    m = {"id": r.text(), "conversation_id": r.text(), "sender": r.text()}
    if r.b[r.i] == 2:
        r.take(1)
        m["recipient"] = None
    else:
        m["recipient"] = r.text()
    m["timestamp_ms"] = r.zigzag()
    m["body"] = r.text()
    m["seq"] = r.varint()
    check(r.i == len(r.b), "no trailing bytes")
    return m


def decode_message(record):
    fmt = record[0]
    if fmt == 3:
        return decode_compact(record)
    if fmt == 1:
        payload = record[1:]
    elif fmt == 2:
        (n,) = struct.unpack("<I", record[1:5])
        payload = record[5:5 + n]
        check(all(b == 0 for b in record[5 + n:]), "zero padding")
        check(len(record) == padme(5 + n), "Padmé length")
    else:
        raise ValueError(fmt)
    r = Reader(payload)
    m = {"id": r.string(), "conversation_id": r.string(), "sender": r.string()}
    m["recipient"] = r.string() if r.take(1)[0] == 1 else None
    m["timestamp_ms"] = r.zigzag()
    m["body"] = r.string()
    m["seq"] = r.varint()
    check(r.i == len(payload), "no trailing bytes")
    return m


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parents[2] / "crates/tresor-crypto/tests/vectors.json"
    v = json.loads(path.read_text())
    ids = {"argon2id": 1, "pbkdf2-hmac-sha512": 2, "raw-key": 3}
    for case in v["kdf"]:
        p = case["params"]
        params = {"argon2id": lambda: (p["memory_kib"], p["iterations"], p["parallelism"]),
                  "pbkdf2-hmac-sha512": lambda: (p["iterations"],),
                  "raw-key": lambda: ()}[case["kdf"]]()
        secret = case["passphrase"].encode() if "passphrase" in case else h(case["raw_key_hex"])
        check(kdf(ids[case["kdf"]], params, secret, h(case["salt_hex"])) == h(case["kek_hex"]),
              f"KEK {case['kdf']}")
    for case in v["key_headers"]:
        secret = case["passphrase"].encode() if "passphrase" in case else h(case["raw_key_hex"])
        check(unlock(h(case["header_hex"]), secret) == h(case["dek_hex"]), "header -> DEK")
    s = v["subkeys"]
    dek = h(s["dek_hex"])
    check(hkdf(b"", dek, b"tresor/v1/values") == h(s["values_hex"]), "value key")
    check(hkdf(b"", dek, b"tresor/v1/index") == h(s["index_hex"]), "index key")
    check(hkdf(b"", dek, b"tresor/v1/backup") == h(s["backup_root_hex"]), "backup root")
    check(hkdf(h(s["backup_id_hex"]), h(s["backup_root_hex"]), b"tresor/v1/backup-chunks")
          == h(s["backup_chunk_key_hex"]), "backup chunk key")
    index_key, value_key = h(s["index_hex"]), h(s["values_hex"])
    for t in v["tokens"]:
        check(token(index_key, t["domain"], t["id"]) == h(t["token_hex"]), f"token {t['id']}")
    for r in v["records"]:
        table = r["table"].encode()
        key = h(r["key_hex"])
        check(key == token(index_key, "message", r["message"]["id"]), "record key = token")
        aad = b"tresor/v1/record" + bytes([len(table)]) + table + key
        check(aad == h(r["aad_hex"]), "record AAD")
        record = open_sealed(value_key, aad, h(r["sealed_hex"]))
        check(record == h(r["record_hex"]), "record bytes")
        check(decode_message(record) == r["message"], "decoded message")
    for o in v["order_keys"]:
        ts, seq = o["timestamp_ms"], o["seq"]
        k = struct.pack(">QQ", (ts % 2**64) ^ 2**63, 2**64 - 1 - seq)
        check(k == h(o["order_key_hex"]), "order key")
    rot = v["rotation"]
    wrap_key = hkdf(b"", h(rot["dek_hex"]), b"tresor/v1/previous-dek")
    check(open_sealed(wrap_key, b"tresor/v1/previous-dek", h(rot["wrapped_hex"]))
          == h(rot["previous_dek_hex"]), "previous DEK")
    print(f"verify.py: {checked} checks passed ({path.name})")


if __name__ == "__main__":
    main()
