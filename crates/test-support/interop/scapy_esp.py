#!/usr/bin/python3
"""Independent ESP cross-check with scapy's SecurityAssociation (Debian python3-scapy).

Reads a JSON job on stdin (written by tests/scapy_interop.rs), and for each case:
  1. decrypts every packet ferroswan sealed and checks it yields the expected inner packet;
  2. seals the given inner packets itself, for ferroswan to open.
Writes a JSON result on stdout. Exit status 0 even when checks fail: the Rust test reads
the per-packet verdicts and reports them.
"""
import json
import sys

from scapy.all import IP, IPv6, Raw, raw
from scapy.layers.ipsec import ESP, SecurityAssociation

OUTER = dict(src="192.0.2.1", dst="192.0.2.2")


def make_sa(case):
    return SecurityAssociation(
        ESP,
        spi=case["spi"],
        crypt_algo=case["crypt_algo"],
        crypt_key=bytes.fromhex(case["crypt_key"]),
        auth_algo=case.get("auth_algo"),
        auth_key=bytes.fromhex(case["auth_key"]) if case.get("auth_key") else None,
        tunnel_header=IP(**OUTER),
        esn_en=case["esn"],
        esn=case["seq_hi"],
    )


def inner(data):
    return IP(data) if data[0] >> 4 == 4 else IPv6(data)


def run_case(case):
    sa = make_sa(case)
    verdicts = []
    for pkt in case["ours"]:
        try:
            outer = IP(raw(IP(proto=50, **OUTER) / Raw(bytes.fromhex(pkt["esp"]))))
            got = raw(sa.decrypt(outer))
            want = bytes.fromhex(pkt["plain"])
            verdicts.append("ok" if got == want else "mismatch: got %s" % got.hex())
        except Exception as e:  # report, don't crash: the Rust side shows it
            verdicts.append("error: %r" % (e,))
    sealed = []
    for i, plain in enumerate(case["plains"]):
        seq = case["scapy_seq_start"] + i
        enc = sa.encrypt(inner(bytes.fromhex(plain)), seq_num=seq)
        sealed.append({"seq": seq, "esp": raw(enc[ESP]).hex()})
    return {"name": case["name"], "verdicts": verdicts, "sealed": sealed}


def main():
    job = json.load(sys.stdin)
    json.dump({"cases": [run_case(c) for c in job["cases"]]}, sys.stdout)


if __name__ == "__main__":
    main()
