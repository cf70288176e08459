#!/usr/bin/python3
"""A simulated IPsec peer for netns_hostile.rs: scapy's SecurityAssociation (Debian
python3-scapy) plays gateway B against a running `ferroswan daemon` on gateway A.

Runs inside gateway B's network namespace. Reads a JSON job on stdin:

    {"carrier": "esp" | "udp", "local": B's transit address, "remote": A's transit address,
     "crypt_algo": scapy name, e.g. "AES-GCM",
     "sa_out": {"spi": B->A SPI, "key": hex}, "sa_in": {"spi": A->B SPI, "key": hex},
     "steps": [step, ...]}

and runs the steps in order. A step is one of

    {"op": "seal", "seq": N, "spi": SPI (default sa_out's), "src": inner source,
     "dst": inner destination, "icmp_id": I, "icmp_seq": S,
     "mutate": null | {"flip": byte index} | {"truncate": length},
     "wait": seconds to listen for ESP from A afterwards,
     "replies": stop listening once this many arrived (0: listen the whole time)}
        scapy seals an ICMP echo request in tunnel mode (ESP sequence number N), optionally
        damages the ESP bytes, and sends them to A;
    {"op": "raw", "hex": ESP bytes, "wait": seconds, "replies": N}
        sends the given bytes as they are (a replay, or a datagram too short to be ESP);
    {"op": "answer", "count": N, "seq": first ESP sequence number, "wait": seconds}
        plays the LAN B host for traffic ferroswan initiates: opens up to N ESP packets from
        A within `wait` seconds and answers every ICMP echo request among them with a sealed
        echo reply (ESP sequence numbers from `seq` on).

With "ready_file" in the job, that file is created once the socket is open (so a test can
start traffic towards B only when the peer listens).

ESP travels as IP protocol 50 through a raw socket (the kernel adds the outer IPv4 header;
holding the socket open also keeps B's kernel from answering with ICMP), or as ESP in UDP
(RFC 3948) from a UDP socket bound to B:4500. After each step, every ESP packet A sends
within `wait` seconds is decrypted with scapy under sa_in and described.

Writes {"steps": [{"sent": hex, "received": [packet, ...]}, ...]} on stdout, where a packet is
{"spi", "esp_seq", "error"} or, when it decrypted, also {"src", "dst", "proto", "icmp_type",
"icmp_id", "icmp_seq", "payload"}.
"""
import json
import select
import socket
import sys
import time

from scapy.all import ICMP, IP, Raw, raw
from scapy.layers.ipsec import ESP, SecurityAssociation

PAYLOAD = b"ferroswan-scapy-peer"


def make_sa(job, sa, spi=None):
    return SecurityAssociation(
        ESP,
        spi=sa["spi"] if spi is None else spi,
        crypt_algo=job["crypt_algo"],
        crypt_key=bytes.fromhex(sa["key"]),
        tunnel_header=IP(src=job["local"], dst=job["remote"]),
    )


def open_socket(job):
    if job["carrier"] == "esp":
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        s.bind((job["local"], 0))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((job["local"], 4500))
    return s


def send(job, s, esp):
    if job["carrier"] == "esp":
        s.sendto(esp, (job["remote"], 0))
    else:
        s.sendto(esp, (job["remote"], 4500))


def recv_esp(job, s, deadline, want):
    """ESP packets from A until the deadline, or until `want` arrived when `want` > 0 (IP
    header or UDP header stripped; NAT-T keepalives and IKE skipped)."""
    got = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or (want and len(got) >= want):
            return got
        ready, _, _ = select.select([s], [], [], left)
        if not ready:
            continue
        data, addr = s.recvfrom(65535)
        if addr[0] != job["remote"]:
            continue
        if job["carrier"] == "esp":
            data = data[(data[0] & 0x0F) * 4:]
        elif data == b"\xff" or data[:4] == b"\0\0\0\0":
            continue  # NAT-T keepalive or IKE (non-ESP marker)
        got.append(data)


def describe(job, esp):
    d = {"spi": int.from_bytes(esp[:4], "big"), "esp_seq": int.from_bytes(esp[4:8], "big")}
    try:
        wire = IP(raw(IP(src=job["remote"], dst=job["local"], proto=50) / Raw(esp)))
        inner = make_sa(job, job["sa_in"]).decrypt(wire)
    except Exception as e:  # reported, the Rust side asserts
        d["error"] = repr(e)
        return d
    d.update(src=inner.src, dst=inner.dst, proto=inner.proto)
    if ICMP in inner:
        icmp = inner[ICMP]
        d.update(icmp_type=icmp.type, icmp_id=icmp.id, icmp_seq=icmp.seq,
                 payload=bytes(icmp.payload).decode("latin-1"))
    return d


def seal(job, step):
    sa = make_sa(job, job["sa_out"], step.get("spi"))
    inner = (IP(src=step["src"], dst=step["dst"], ttl=64)
             / ICMP(type=8, id=step.get("icmp_id", 0x4242), seq=step.get("icmp_seq", 1))
             / Raw(PAYLOAD))
    esp = bytearray(raw(sa.encrypt(inner, seq_num=step["seq"])[ESP]))
    mutate = step.get("mutate") or {}
    if "flip" in mutate:
        esp[mutate["flip"]] ^= 0x01
    if "truncate" in mutate:
        del esp[mutate["truncate"]:]
    return bytes(esp)


def answer(job, s, step):
    sa_in, sa_out = make_sa(job, job["sa_in"]), make_sa(job, job["sa_out"])
    deadline, seq, received = time.monotonic() + step["wait"], step["seq"], []
    while len(received) < step["count"]:
        got = recv_esp(job, s, deadline, 1)
        if not got:
            break
        received.append(describe(job, got[0]))
        try:
            wire = IP(raw(IP(src=job["remote"], dst=job["local"], proto=50) / Raw(got[0])))
            inner = sa_in.decrypt(wire)
        except Exception:
            continue
        if ICMP not in inner or inner[ICMP].type != 8:
            continue
        reply = (IP(src=inner.dst, dst=inner.src, ttl=64)
                 / ICMP(type=0, id=inner[ICMP].id, seq=inner[ICMP].seq)
                 / Raw(bytes(inner[ICMP].payload)))
        send(job, s, raw(sa_out.encrypt(reply, seq_num=seq)[ESP]))
        seq += 1
    return {"sent": "", "received": received}


def main():
    job = json.load(sys.stdin)
    s = open_socket(job)
    results = []
    if job.get("ready_file"):
        open(job["ready_file"], "w").close()
    for step in job["steps"]:
        if step["op"] == "answer":
            results.append(answer(job, s, step))
            continue
        esp = seal(job, step) if step["op"] == "seal" else bytes.fromhex(step["hex"])
        send(job, s, esp)
        deadline = time.monotonic() + step.get("wait", 2.0)
        received = recv_esp(job, s, deadline, step.get("replies", 0))
        results.append({"sent": esp.hex(), "received": [describe(job, r) for r in received]})
    json.dump({"steps": results}, sys.stdout)


if __name__ == "__main__":
    main()
