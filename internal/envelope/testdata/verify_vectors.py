#!/usr/bin/env python3
"""Check record.json and chunks.json against docs/wire-format.md with an
implementation independent of the Go code (Python cryptography). Needs
`cryptography`. Run: python3 envelope/testdata/verify_vectors.py"""
import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HERE = os.path.dirname(os.path.abspath(__file__))


def lp(b):
    return struct.pack(">I", len(b)) + b


# Key headers name the data key and are not in the associated data
# (docs/wire-format.md section 3).
KEY_HEADERS = ("kafkagate.kek", "kafkagate.edek", "kafkagate.origin")


def aad(topic, key, headers):
    auth = sorted((h["key"].encode(), h["value"].encode()) for h in headers
                  if h["key"].startswith("kafkagate.") and not h["key"].startswith("kafkagate.note.")
                  and h["key"] not in KEY_HEADERS)
    out = b"kafkagate-aad-v1" + lp(topic.encode()) + lp(key.encode()) + struct.pack(">I", len(auth))
    for k, v in auth:
        out += lp(k) + lp(v)
    return out


r = json.load(open(os.path.join(HERE, "record.json")))
a = aad(r["topic"], r["key"], r["headers"])
assert a.hex() == r["aad"], "record AAD"
v = bytes.fromhex(r["value"])
assert v[:12].hex() == r["nonce"]
assert AESGCM(bytes.fromhex(r["dek"])).decrypt(v[:12], v[12:], a).decode() == r["plaintext"]
print("record.json OK")

c = json.load(open(os.path.join(HERE, "chunks.json")))
okm = HKDF(algorithm=hashes.SHA256(), length=39, salt=bytes.fromhex(c["file_id"]),
           info=b"kafkagate chunk/1 A256GCM-HKDF-SHA256-STREAM").derive(bytes.fromhex(c["dek"]))
assert okm[:32].hex() == c["file_key"] and okm[32:].hex() == c["nonce_prefix"]
plain = b""
for i, rec in enumerate(c["records"]):
    hs = {h["key"]: h["value"] for h in rec["headers"]}
    last = hs["kafkagate.last"] == "1"
    assert int(hs["kafkagate.chunk"]) == i
    nonce = okm[32:] + struct.pack(">I", i) + (b"\x01" if last else b"\x00")
    plain += AESGCM(okm[:32]).decrypt(nonce, bytes.fromhex(rec["value"]), aad(c["topic"], rec["key"], rec["headers"]))
    if last:
        m = json.loads(hs["kafkagate.manifest"])
        assert m["size"] == len(plain) and m["sha256"] == hashlib.sha256(plain).hexdigest() and m["chunks"] == i + 1
assert plain.decode() == c["plaintext"]
print("chunks.json OK")
