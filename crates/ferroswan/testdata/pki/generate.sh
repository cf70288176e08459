#!/usr/bin/env bash
# Regenerates the X.509 test fixtures of `crates/ferroswan/src/pki` and
# `crates/ferroswan/tests/ikev2_cert_sim.rs` with strongSwan's own `pki` tool (Debian package
# strongswan-pki) and openssl. The output is committed, so the tests do not need either tool;
# rerun only to change the fixtures (every key and serial changes then).
#
# Layout (swanctl's, so `CredentialStore::load` reads this directory as a config dir):
#   x509ca/     trusted root CA (RSA 3072): "C=CH, O=ferroswan test, CN=Root CA"
#   x509/       end-entity certs issued by the root unless noted:
#                 moon (RSA 2048), sun (RSA 3072, cert signed with RSA-PSS), carol (ECDSA P-256),
#                 dave (ECDSA P-384), ed (Ed25519), venus (P-256, issued by the intermediate),
#                 expired (P-256, 2020-2021), future (P-256, valid from 2090),
#                 mars (P-256, issued by the other CA)
#   private/    keys as pki writes them: RSA PKCS#1 / ECDSA SEC1 (PEM), Ed25519 PKCS#8 (PEM)
#   pkcs8/      moon, carol and dave keys converted to PKCS#8 (PEM), used by the secrets tests
#   der/        moon key (PKCS#1 DER) and carol cert (DER)
#   intermediate/ intermediate CA (ECDSA P-384, issued by the root): sent by the peer only
#   other/      an unrelated CA (Ed25519): "C=CH, O=Other CA" and its key
#   expected/   values computed by openssl, checked by the tests:
#                 root.certreq.hex: SHA-1 of the root's SubjectPublicKeyInfo DER (RFC 7296 §3.7)
#                 message.bin and openssl-{moon,carol}.sig: `openssl dgst -sha256 -sign`
set -euo pipefail
cd "$(dirname "$0")"
command -v pki >/dev/null || { echo "needs strongSwan's pki: apt-get install strongswan-pki" >&2; exit 1; }

rm -rf x509ca x509 private pkcs8 der intermediate other expected
mkdir -p x509ca x509 private pkcs8 der intermediate other expected

# pki prints plugin loading noise on stderr; keep real errors visible through the exit status.
run_pki() { pki "$@" 2>/dev/null; }
LIFETIME=7300 # 20 years

ROOT_DN="C=CH, O=ferroswan test, CN=Root CA"
run_pki --gen --type rsa --size 3072 --outform pem > private/rootKey.pem
run_pki --self --ca --lifetime $LIFETIME --in private/rootKey.pem --dn "$ROOT_DN" \
    --outform pem > x509ca/rootCert.pem

run_pki --gen --type ecdsa --size 384 --outform pem > intermediate/intermediateKey.pem
run_pki --pub --in intermediate/intermediateKey.pem --type priv \
    | run_pki --issue --cacert x509ca/rootCert.pem --cakey private/rootKey.pem --ca \
        --lifetime $LIFETIME --dn "C=CH, O=ferroswan test, CN=Intermediate CA" --outform pem \
    > intermediate/intermediateCert.pem

run_pki --gen --type ed25519 --outform pem > other/otherKey.pem
run_pki --self --ca --lifetime $LIFETIME --in other/otherKey.pem --type ed25519 \
    --dn "C=CH, O=Other CA" --outform pem > other/otherCert.pem

# host NAME TYPE SIZE CACERT CAKEY [extra pki --issue options...]
host() {
    local name=$1 type=$2 size=$3 cacert=$4 cakey=$5
    shift 5
    if [ "$type" = ed25519 ]; then
        run_pki --gen --type ed25519 --outform pem > "private/${name}Key.pem"
    else
        run_pki --gen --type "$type" --size "$size" --outform pem > "private/${name}Key.pem"
    fi
    run_pki --pub --in "private/${name}Key.pem" --type priv \
        | run_pki --issue --cacert "$cacert" --cakey "$cakey" \
            --dn "C=CH, O=ferroswan test, CN=${name}.example" \
            --san "${name}.example" --san "${name}@example.org" "$@" --outform pem \
        > "x509/${name}Cert.pem"
}
ROOT=(x509ca/rootCert.pem private/rootKey.pem)
host moon rsa 2048 "${ROOT[@]}" --san 192.0.2.1 --san 2001:db8::1 --lifetime $LIFETIME
host sun rsa 3072 "${ROOT[@]}" --rsa-padding pss --lifetime $LIFETIME
host carol ecdsa 256 "${ROOT[@]}" --lifetime $LIFETIME
host dave ecdsa 384 "${ROOT[@]}" --lifetime $LIFETIME
host ed ed25519 0 "${ROOT[@]}" --lifetime $LIFETIME
host venus ecdsa 256 intermediate/intermediateCert.pem intermediate/intermediateKey.pem \
    --lifetime $LIFETIME
host expired ecdsa 256 "${ROOT[@]}" --not-before "01.01.20 00:00:00" \
    --not-after "01.01.21 00:00:00"
host future ecdsa 256 "${ROOT[@]}" --dateform "%Y-%m-%d %T" \
    --not-before "2090-01-01 00:00:00" --not-after "2095-01-01 00:00:00"
host mars ecdsa 256 other/otherCert.pem other/otherKey.pem --lifetime $LIFETIME

for name in moon carol dave; do
    openssl pkcs8 -topk8 -nocrypt -in "private/${name}Key.pem" -out "pkcs8/${name}Key.pem"
done
openssl rsa -in private/moonKey.pem -traditional -outform DER -out der/moonKey.der 2>/dev/null
openssl x509 -in x509/carolCert.pem -outform DER -out der/carolCert.der

openssl x509 -in x509ca/rootCert.pem -pubkey -noout | openssl pkey -pubin -outform DER \
    | sha1sum | cut -d' ' -f1 > expected/root.certreq.hex

printf 'ferroswan signed octets\n' > expected/message.bin
openssl dgst -sha256 -sign private/moonKey.pem -out expected/openssl-moon.sig expected/message.bin
openssl dgst -sha256 -sign private/carolKey.pem -out expected/openssl-carol.sig expected/message.bin

echo "fixtures written to $(pwd)"
