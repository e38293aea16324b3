#!/usr/bin/env bash
# Self-test of tests/sigstore/gen.py: exercises every subcommand and checks the results.
# Exits non-zero if any check fails.
#
# Optional parts, each announced when skipped:
#   - containers/image golden fixtures: read with git from $CIMAGE_GIT (a clone or bare mirror of
#     github.com/containers/image; default /work/.mirror/containers+image/repo). They are read, never copied.
#   - a real registry: /usr/bin/docker-registry (Debian package docker-registry), or $DOCKER_REGISTRY.
#   - skopeo: cross-checks the attachment format against containers/image in both directions.
#   - openssl: cross-checks signatures with a second implementation.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
GEN_PY="$HERE/gen.py"
gen() { "$PY" "$GEN_PY" "$@"; }

W=$(mktemp -d "${TMPDIR:-/tmp}/sigstore-selftest.XXXXXX")
REG_PID=""
cleanup() {
    if [ -n "$REG_PID" ]; then
        kill "$REG_PID" 2>/dev/null
        wait "$REG_PID" 2>/dev/null
    fi
    rm -rf "$W"
}
trap cleanup EXIT

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $1"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $1"; }
skip() { echo "SKIP - $1"; }

# expect EXITCODE DESCRIPTION COMMAND... : runs COMMAND, checks its exit code.
expect() {
    local want=$1 desc=$2
    shift 2
    "$@" >"$W/last.out" 2>"$W/last.err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        ok "$desc"
    else
        bad "$desc (exit $rc, wanted $want)"
        sed 's/^/    | /' "$W/last.out" "$W/last.err" | head -20
    fi
}
# expect_err EXITCODE REGEX DESCRIPTION COMMAND... : also checks that stderr matches REGEX.
expect_err() {
    local want=$1 re=$2 desc=$3
    shift 3
    "$@" >"$W/last.out" 2>"$W/last.err"
    local rc=$?
    if [ "$rc" -eq "$want" ] && grep -Eq -- "$re" "$W/last.err"; then
        ok "$desc"
    else
        bad "$desc (exit $rc, wanted $want with stderr matching /$re/)"
        sed 's/^/    | /' "$W/last.err" | head -20
    fi
}
check() { # check DESCRIPTION COMMAND... : passes if COMMAND succeeds (its output kept apart from last.out)
    local desc=$1
    shift
    if "$@" >"$W/check.out" 2>"$W/check.err"; then ok "$desc"; else
        bad "$desc"
        sed 's/^/    | /' "$W/check.out" "$W/check.err" | head -20
    fi
}
pycheck() { # pycheck DESCRIPTION PYTHON-CODE [ARGS...] : passes if the Python snippet exits 0
    local desc=$1 code=$2
    shift 2
    check "$desc" "$PY" -c "$code" "$@"
}

if ! "$PY" -c 'import cryptography, nacl' 2>/dev/null; then
    echo "selftest: missing Python packages; run: pip install -r $HERE/requirements.txt" >&2
    exit 2
fi
HAVE_OPENSSL=0
command -v openssl >/dev/null 2>&1 && HAVE_OPENSSL=1

cd "$W" || exit 2
DIGEST=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
REF=registry.example/ns/img:v1

echo "# keygen / decrypt-key"
for t in ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 ed25519; do
    expect 0 "keygen $t" gen keygen --type "$t" --out "k-$t" --password "pw-$t"
    check "$t: .key is an ENCRYPTED SIGSTORE PRIVATE KEY" grep -q '^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----$' "k-$t.key"
    check "$t: .pub is a PUBLIC KEY" grep -q '^-----BEGIN PUBLIC KEY-----$' "k-$t.pub"
    expect 0 "$t: decrypt-key with the right password" gen decrypt-key --key "k-$t.key" --password "pw-$t" --out "k-$t.dec.pem" --pub-out "k-$t.dec.pub" --expect-pub "k-$t.pub"
    check "$t: decrypted key is byte-identical to PREFIX.pem" cmp "k-$t.dec.pem" "k-$t.pem"
    check "$t: public key derived from the decrypted key is identical" cmp "k-$t.dec.pub" "k-$t.pub"
    grep -q "^$t ENCRYPTED SIGSTORE PRIVATE KEY$" "$W/last.out" && ok "$t: decrypt-key reports the key type" || bad "$t: decrypt-key reports the key type"
    expect_err 2 "wrong password" "$t: decrypt-key with a wrong password fails" gen decrypt-key --key "k-$t.key" --password "nope" --out "k-$t.wrong.pem"
    [ ! -e "k-$t.wrong.pem" ] && ok "$t: nothing written on a wrong password" || bad "$t: nothing written on a wrong password"
    if [ "$HAVE_OPENSSL" = 1 ]; then
        check "$t: openssl reads PREFIX.pem" openssl pkey -in "k-$t.pem" -noout
        check "$t: openssl reads PREFIX.pub" openssl pkey -pubin -in "k-$t.pub" -noout
    fi
done
pycheck "encrypted key body: cosign JSON layout (field order, scrypt N=32768 r=8 p=1, 32-byte salt, 24-byte nonce)" '
import base64, json, re, sys
pem = open(sys.argv[1]).read()
body = base64.b64decode("".join(pem.strip().splitlines()[1:-1]))
assert re.fullmatch(rb"\{\"kdf\":\{\"name\":\"scrypt\",\"params\":\{\"N\":32768,\"r\":8,\"p\":1\},\"salt\":\"[A-Za-z0-9+/=]+\"\},\"cipher\":\{\"name\":\"nacl/secretbox\",\"nonce\":\"[A-Za-z0-9+/=]+\"\},\"ciphertext\":\"[A-Za-z0-9+/=]+\"\}", body), body
j = json.loads(body)
assert len(base64.b64decode(j["kdf"]["salt"])) == 32 and len(base64.b64decode(j["cipher"]["nonce"])) == 24
' k-ecdsa-p256.key
expect 0 "keygen --legacy-pem --scrypt-n 65536, empty password" gen keygen --out k-legacy --legacy-pem --scrypt-n 65536
check "legacy key has the ENCRYPTED COSIGN PRIVATE KEY type" grep -q '^-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----$' k-legacy.key
expect 0 "decrypt-key of the legacy key with the empty password" gen decrypt-key --key k-legacy.key --password '' --out k-legacy.dec.pem --expect-pub k-legacy.pub
expect_err 1 "does not match" "decrypt-key --expect-pub with another key's public key fails" gen decrypt-key --key k-legacy.key --password '' --out k-legacy.dec2.pem --expect-pub k-ecdsa-p256.pub
"$PY" - k-ecdsa-p256.key k-corrupt.key <<'EOF'
import base64, json, sys
lines = open(sys.argv[1]).read().strip().splitlines()
j = json.loads(base64.b64decode("".join(lines[1:-1])))
ct = bytearray(base64.b64decode(j["ciphertext"])); ct[-1] ^= 1
j["ciphertext"] = base64.b64encode(bytes(ct)).decode()
b = base64.b64encode(json.dumps(j, separators=(",", ":")).encode()).decode()
open(sys.argv[2], "w").write(lines[0] + "\n" + "\n".join(b[i:i+64] for i in range(0, len(b), 64)) + "\n" + lines[-1] + "\n")
EOF
expect_err 2 "decryption failed" "decrypt-key of a key with a flipped ciphertext bit fails" gen decrypt-key --key k-corrupt.key --password pw-ecdsa-p256 --out x.pem
"$PY" - k-ecdsa-p256.key k-badn.key <<'EOF'
import base64, json, sys
lines = open(sys.argv[1]).read().strip().splitlines()
j = json.loads(base64.b64decode("".join(lines[1:-1]))); j["kdf"]["params"]["N"] = 1024
b = base64.b64encode(json.dumps(j, separators=(",", ":")).encode()).decode()
open(sys.argv[2], "w").write(lines[0] + "\n" + b + "\n" + lines[-1] + "\n")
EOF
expect_err 2 "unsupported scrypt parameters" "decrypt-key refuses scrypt parameters cosign refuses" gen decrypt-key --key k-badn.key --password pw-ecdsa-p256 --out x.pem
expect_err 2 "PEM type" "decrypt-key refuses an unencrypted key" gen decrypt-key --key k-ecdsa-p256.pem --password x --out x.pem
expect_err 2 "cannot read" "decrypt-key of a missing file fails clearly" gen decrypt-key --key does-not-exist --password x --out x.pem
expect 2 "keygen with an unknown type fails" gen keygen --type dsa --out k-dsa

echo "# payload"
expect 0 "payload with the cosign default optional null" gen payload --digest "$DIGEST" --reference "$REF" --out p.json
printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' "$REF" "$DIGEST" >p.want
check "payload bytes are exactly cosign's serialisation" cmp p.json p.want
expect 0 "payload --optional-null" gen payload --digest "$DIGEST" --reference "$REF" --optional-null --out p-null.json
check "payload --optional-null is the default" cmp p-null.json p.want
expect 0 "payload --optional-json re-encoded with sorted keys" gen payload --digest "$DIGEST" --reference "$REF" --optional-json '{"z":1,"a":{"y":"<&>","b":true}}' --out p-opt.json
check "optional object keys sorted and <&> escaped as Go does" grep -qF '"optional":{"a":{"b":true,"y":"\u003c\u0026\u003e"},"z":1}}' p-opt.json
expect 0 "payload containers/image style creator+timestamp" gen payload --digest "$DIGEST" --reference "$REF" --creator "ferry test" --timestamp 1700000000 --out p-ci.json
check "creator/timestamp optional" grep -qF '"optional":{"creator":"ferry test","timestamp":1700000000}}' p-ci.json
echo '{"schemaVersion":2}' >m.json
expect 0 "payload --manifest digests the file" gen payload --manifest m.json --reference "$REF" --out p-m.json
check "payload --manifest uses sha256 of the file" grep -qF "\"docker-manifest-digest\":\"sha256:$(sha256sum m.json | cut -d' ' -f1)\"" p-m.json
expect 0 "payload --optional-raw (malformed, for negative tests)" gen payload --digest "$DIGEST" --reference "$REF" --optional-raw '{"timestamp":1.5}' --out p-raw.json
check "optional-raw inserted verbatim" grep -qF '"optional":{"timestamp":1.5}}' p-raw.json
expect_err 2 "not ALGO:HEX" "payload with a bad digest fails" gen payload --digest sha256:xyz --reference "$REF" --out x.json
expect_err 2 "white space" "payload with a reference containing spaces fails" gen payload --digest "$DIGEST" --reference "a b" --out x.json
expect 0 "payload --no-validate accepts a bad digest" gen payload --digest sha256:xyz --reference "$REF" --no-validate --out p-bad.json
expect_err 2 "floating-point" "payload --optional-json with a float fails clearly" gen payload --digest "$DIGEST" --reference "$REF" --optional-json '{"a":1.5}' --out x.json

echo "# sign / verify"
cat p.json >p-tampered.json
printf ' ' >>p-tampered.json
for t in ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 ed25519; do
    expect 0 "$t: sign with the encrypted key and --password" gen sign --key "k-$t.key" --password "pw-$t" --payload p.json --out "s-$t.b64"
    expect 0 "$t: sign with the plain PKCS#8 key" gen sign --key "k-$t.pem" --payload p.json --out "s2-$t.b64"
    expect 0 "$t: verify" gen verify --pub "k-$t.pub" --payload p.json --signature "s-$t.b64" --check-payload --expect-digest "$DIGEST" --expect-reference "$REF"
    expect 0 "$t: verify the second signature" gen verify --pub "k-$t.pub" --payload p.json --signature "s2-$t.b64"
    expect 1 "$t: verify of a tampered payload fails" gen verify --pub "k-$t.pub" --payload p-tampered.json --signature "s-$t.b64"
    expect 1 "$t: verify with another key fails" gen verify --pub k-legacy.pub --payload p.json --signature "s-$t.b64"
    if [ "$HAVE_OPENSSL" = 1 ]; then
        base64 -d "s-$t.b64" >"s-$t.der"
        if [ "$t" = ed25519 ]; then
            check "$t: openssl verifies the signature (pure Ed25519)" openssl pkeyutl -verify -pubin -inkey "k-$t.pub" -rawin -in p.json -sigfile "s-$t.der"
        else
            check "$t: openssl verifies the signature (SHA-256)" openssl dgst -sha256 -verify "k-$t.pub" -signature "s-$t.der" p.json
        fi
    fi
done
expect 1 "verify --expect-digest mismatch fails" gen verify --pub k-ecdsa-p256.pub --payload p.json --signature s-ecdsa-p256.b64 --expect-digest sha256:1111111111111111111111111111111111111111111111111111111111111111
expect 1 "verify --expect-reference mismatch fails" gen verify --pub k-ecdsa-p256.pub --payload p.json --signature s-ecdsa-p256.b64 --expect-reference other/ref:v1
expect 0 "sign --hash sha384 (for negative tests)" gen sign --key k-ecdsa-p384.pem --payload p.json --hash sha384 --out s-384.b64
expect 1 "verify rejects a SHA-384 ECDSA signature (SHA-256 is hard-coded)" gen verify --pub k-ecdsa-p384.pub --payload p.json --signature s-384.b64
printf 'MEUCIQ!!notbase64' >s-bad.b64
expect 1 "verify of a non-base64 signature fails" gen verify --pub k-ecdsa-p256.pub --payload p.json --signature s-bad.b64
expect_err 2 "give --password" "sign with an encrypted key and no password fails clearly" gen sign --key k-ecdsa-p256.key --payload p.json --out x.b64
expect_err 2 "wrong password" "sign with a wrong password fails clearly" gen sign --key k-ecdsa-p256.key --password nope --payload p.json --out x.b64
expect_err 2 "PEM type|no PEM" "verify with a non-key as public key fails clearly" gen verify --pub p.json --payload p.json --signature s-ecdsa-p256.b64
gen sign --key k-ecdsa-p256.pem --payload p-opt.json --out s-opt.b64
gen sign --key k-ecdsa-p256.pem --payload p-raw.json --out s-raw.b64
expect 1 "--check-payload rejects a non-integer timestamp" gen verify --pub k-ecdsa-p256.pub --payload p-raw.json --signature s-raw.b64 --check-payload
expect 0 "--check-payload accepts unknown optional fields" gen verify --pub k-ecdsa-p256.pub --payload p-opt.json --signature s-opt.b64 --check-payload

echo "# sigfile / read-sigfile"
expect 0 "sigfile" gen sigfile --payload p.json --signature s-ecdsa-p256.b64 --annotation zz=last --annotation aa=first --out sf
pycheck "sigfile layout: 0x00 sigstore-json \\n, then mimeType/payload/annotations (sorted)" '
import base64, json, sys
b = open(sys.argv[1], "rb").read()
assert b.startswith(b"\x00sigstore-json\n"), b[:20]
j = b[len(b"\x00sigstore-json\n"):]
assert j.startswith(b"{\"mimeType\":\"application/vnd.dev.cosign.simplesigning.v1+json\",\"payload\":\""), j[:80]
d = json.loads(j)
assert list(d) == ["mimeType", "payload", "annotations"]
assert list(d["annotations"]) == ["aa", "dev.cosignproject.cosign/signature", "zz"]
assert base64.b64decode(d["payload"]) == open(sys.argv[2], "rb").read()
assert d["annotations"]["dev.cosignproject.cosign/signature"] == open(sys.argv[3]).read().strip()
' sf p.json s-ecdsa-p256.b64
expect 0 "read-sigfile --pub verifies" gen read-sigfile --in sf --pub k-ecdsa-p256.pub --payload-out sf.payload --signature-out sf.sig --expect-digest "$DIGEST"
check "read-sigfile prints the decoded payload" grep -q '"docker-manifest-digest": "'"$DIGEST"'"' "$W/last.out"
check "read-sigfile --payload-out gives back the payload bytes" cmp sf.payload p.json
check "read-sigfile --signature-out gives back the signature" cmp sf.sig s-ecdsa-p256.b64
expect 1 "read-sigfile --pub with another key fails" gen read-sigfile --in sf --pub k-ed25519.pub
expect 0 "sigfile --omit-signature-annotation" gen sigfile --payload p.json --omit-signature-annotation --out sf-nosig
expect_err 1 "missing dev.cosignproject.cosign/signature" "read-sigfile --pub of a signature file without the signature annotation fails" gen read-sigfile --in sf-nosig --pub k-ecdsa-p256.pub
expect 0 "sigfile with another MIME type" gen sigfile --payload p.json --signature s-ecdsa-p256.b64 --mime-type application/vnd.example+json --out sf-mt
expect 1 "read-sigfile --pub rejects a non-simple-signing MIME type" gen read-sigfile --in sf-mt --pub k-ecdsa-p256.pub
printf 'not a signature' >sf-garbage
expect_err 2 "0x00" "read-sigfile of garbage fails clearly" gen read-sigfile --in sf-garbage
expect_err 2 "give --signature" "sigfile without --signature fails clearly" gen sigfile --payload p.json --out x
expect_err 2 "KEY=VALUE" "sigfile with a malformed --annotation fails clearly" gen sigfile --payload p.json --signature s-ecdsa-p256.b64 --annotation novalue --out x

echo "# containers/image golden fixtures"
CIMAGE_GIT=${CIMAGE_GIT:-/work/.mirror/containers+image/repo}
if git -C "$CIMAGE_GIT" cat-file -e HEAD:signature/fixtures/cosign.pub 2>/dev/null; then
    mkdir -p fx
    fx() { git -C "$CIMAGE_GIT" show "HEAD:signature/fixtures/$1" >"fx/$2"; }
    fx cosign.pub cosign.pub
    fx cosign2.pub cosign2.pub
    fx fulcio_v1.crt.pem fulcio_v1.crt.pem
    git -C "$CIMAGE_GIT" show HEAD:signature/internal/testdata/rekor.pub >fx/rekor.pub
    fx dir-img-cosign-valid/signature-1 valid.sig
    fx dir-img-cosign-valid/manifest.json valid.manifest
    fx dir-img-cosign-key-rekor-valid/signature-1 key-rekor.sig
    fx dir-img-cosign-fulcio-rekor-valid/signature-1 fulcio-rekor.sig
    expect 0 "read-sigfile --pub cosign.pub accepts dir-img-cosign-valid/signature-1" gen read-sigfile --in fx/valid.sig --pub fx/cosign.pub --payload-out fx/valid.payload --signature-out fx/valid.b64 --check-payload
    expect 0 "verify accepts the fixture's payload and signature with cosign.pub" gen verify --pub fx/cosign.pub --payload fx/valid.payload --signature fx/valid.b64
    expect 1 "verify rejects them with cosign2.pub" gen verify --pub fx/cosign2.pub --payload fx/valid.payload --signature fx/valid.b64
    expect 0 "payload --manifest regenerates the fixture's payload" gen payload --manifest fx/valid.manifest --reference 192.168.64.2:5000/cosign-signed-single-sample --out fx/valid.payload2
    check "regenerated payload is byte-identical to cosign's" cmp fx/valid.payload fx/valid.payload2
    expect 0 "sigfile from the fixture's payload and signature" gen sigfile --payload fx/valid.payload2 --signature fx/valid.b64 --out fx/valid.sig2
    check "regenerated signature file is byte-identical to the fixture" cmp fx/valid.sig fx/valid.sig2
    expect 0 "verify-set accepts dir-img-cosign-key-rekor-valid (cosign2.pub, rekor.pub)" gen verify-set --sigfile fx/key-rekor.sig --rekor-pub fx/rekor.pub --pub fx/cosign2.pub
    expect 1 "verify-set rejects it with cosign.pub" gen verify-set --sigfile fx/key-rekor.sig --rekor-pub fx/rekor.pub --pub fx/cosign.pub
    expect 1 "verify-set rejects it with another Rekor key" gen verify-set --sigfile fx/key-rekor.sig --rekor-pub fx/cosign.pub --pub fx/cosign2.pub
    expect 0 "verify-keyless accepts dir-img-cosign-fulcio-rekor-valid (fulcio_v1.crt.pem, rekor.pub)" gen verify-keyless --sigfile fx/fulcio-rekor.sig --rekor-pub fx/rekor.pub --ca-root fx/fulcio_v1.crt.pem --email mitr@redhat.com --issuer https://github.com/login/oauth --check-payload
    expect 1 "verify-keyless rejects another email" gen verify-keyless --sigfile fx/fulcio-rekor.sig --rekor-pub fx/rekor.pub --ca-root fx/fulcio_v1.crt.pem --email someone@example.com --issuer https://github.com/login/oauth
    expect 1 "verify-keyless rejects another issuer" gen verify-keyless --sigfile fx/fulcio-rekor.sig --rekor-pub fx/rekor.pub --ca-root fx/fulcio_v1.crt.pem --email mitr@redhat.com --issuer https://accounts.google.com
    "$PY" - fx/key-rekor.sig fx/key-rekor.resig "$GEN_PY" <<'EOF' && ok "bundle body, bundle JSON and signature file of the key+Rekor fixture regenerate byte-identically" || bad "bundle body, bundle JSON and signature file of the key+Rekor fixture regenerate byte-identically"
import base64, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("gen", sys.argv[3]); gen = importlib.util.module_from_spec(spec); spec.loader.exec_module(gen)
raw = open(sys.argv[1], "rb").read()
s = gen.parse_sigfile(raw, "fixture")
ann = s["annotations"]
bundle = json.loads(ann[gen.BUNDLE_ANNOTATION])
pub = gen.pem_encode("PUBLIC KEY", gen.spki_der(gen.load_public_key("fx/cosign2.pub")))
body = gen.make_hashedrekord_body(s["payload"], base64.b64decode(ann[gen.SIGNATURE_ANNOTATION]), pub)
assert body == base64.b64decode(bundle["Payload"]["body"])
p = bundle["Payload"]
again = gen.go_json({"SignedEntryTimestamp": bundle["SignedEntryTimestamp"], "Payload": {"body": p["body"], "integratedTime": p["integratedTime"], "logIndex": p["logIndex"], "logID": p["logID"]}})
assert again.decode() == ann[gen.BUNDLE_ANNOTATION]
assert gen.make_sigfile(s["payload"], ann) == raw
EOF
else
    skip "containers/image fixtures: no git repository at CIMAGE_GIT=$CIMAGE_GIT"
fi

echo "# keyless: ca / cert / rekor-key / set / verify-set / verify-keyless"
NOW=$(date +%s)
expect 0 "ca" gen ca --out ca
check "chain = intermediate + root" "$PY" -c 'import sys; d=open(sys.argv[1]).read(); assert d == open(sys.argv[2]).read() + open(sys.argv[3]).read()' ca.chain.pem ca.intermediate.pem ca.root.pem
expect 0 "cert (both issuer extensions)" gen cert --ca ca --email signer@example.com --issuer https://issuer.example --out leaf
expect 0 "rekor-key" gen rekor-key --out rekor
check "rekor-key prints sha256 of the public key as log ID" grep -qx "$("$PY" -c 'import sys,base64,hashlib; l=open(sys.argv[1]).read().strip().splitlines(); print(hashlib.sha256(base64.b64decode("".join(l[1:-1]))).hexdigest())' rekor.pub)" "$W/last.out"
if [ "$HAVE_OPENSSL" = 1 ]; then
    check "openssl: leaf verifies against root via intermediate" openssl verify -CAfile ca.root.pem -untrusted ca.intermediate.pem leaf.pem
    check "openssl: leaf has the SAN email and both Fulcio issuer OIDs" sh -c 'openssl x509 -in leaf.pem -noout -text | grep -q "email:signer@example.com" && openssl x509 -in leaf.pem -noout -text | grep -q "1.3.6.1.4.1.57264.1.1" && openssl x509 -in leaf.pem -noout -text | grep -q "1.3.6.1.4.1.57264.1.8"'
fi
gen sign --key leaf.key --payload p.json --out kl.b64
expect 0 "set (certificate)" gen set --rekor-key rekor --payload p.json --signature kl.b64 --cert leaf.pem --integrated-time "$NOW" --log-index 42 --out kl.set
pycheck "SET JSON layout (cosign RekorBundle order) and hashedrekord body" '
import base64, json, sys, hashlib
raw = open(sys.argv[1]).read()
assert raw.startswith("{\"SignedEntryTimestamp\":\""), raw[:40]
d = json.loads(raw); assert list(d) == ["SignedEntryTimestamp", "Payload"]
assert list(d["Payload"]) == ["body", "integratedTime", "logIndex", "logID"]
assert d["Payload"]["logIndex"] == 42 and d["Payload"]["integratedTime"] == int(sys.argv[4])
body = base64.b64decode(d["Payload"]["body"])
b = json.loads(body)
assert body == json.dumps(b, sort_keys=True, separators=(",", ":")).encode()
assert b["kind"] == "hashedrekord" and b["apiVersion"] == "0.0.1"
assert b["spec"]["data"]["hash"] == {"algorithm": "sha256", "value": hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()}
assert base64.b64decode(b["spec"]["signature"]["publicKey"]["content"]) == open(sys.argv[3], "rb").read()
' kl.set p.json leaf.pem "$NOW"
expect 0 "sigfile with certificate, chain and bundle annotations" gen sigfile --payload p.json --signature kl.b64 --annotation-file dev.sigstore.cosign/certificate=leaf.pem --annotation-file dev.sigstore.cosign/chain=ca.chain.pem --annotation-file dev.sigstore.cosign/bundle=kl.set --out kl.sigfile
expect 0 "verify-keyless accepts it" gen verify-keyless --sigfile kl.sigfile --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example --check-payload --expect-digest "$DIGEST"
expect 0 "verify-keyless from separate files" gen verify-keyless --payload p.json --signature kl.b64 --cert leaf.pem --chain ca.chain.pem --set kl.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
expect 0 "verify-set accepts it" gen verify-set --sigfile kl.sigfile --rekor-pub rekor.pub
expect_err 1 "email" "verify-keyless rejects another email" gen verify-keyless --sigfile kl.sigfile --rekor-pub rekor.pub --ca-root ca.root.pem --email other@example.com --issuer https://issuer.example
expect_err 1 "issuer" "verify-keyless rejects another issuer" gen verify-keyless --sigfile kl.sigfile --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://other.example
gen rekor-key --out rekor2 >/dev/null
expect_err 1 "SET failed" "verify-keyless rejects another Rekor key" gen verify-keyless --sigfile kl.sigfile --rekor-pub rekor2.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
expect 0 "verify-keyless accepts when one of several Rekor keys matches" gen verify-keyless --sigfile kl.sigfile --rekor-pub rekor2.pub --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
gen ca --out ca2
expect_err 1 "trusted root" "verify-keyless rejects another CA root" gen verify-keyless --sigfile kl.sigfile --rekor-pub rekor.pub --ca-root ca2.root.pem --email signer@example.com --issuer https://issuer.example
expect_err 1 "payload in Rekor SET does not match" "verify-keyless rejects a payload other than the SET's" gen verify-keyless --payload p-opt.json --signature kl.b64 --cert leaf.pem --chain ca.chain.pem --set kl.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
gen sign --key leaf.key --payload p.json --out kl2.b64
expect_err 1 "signature in Rekor SET does not match" "verify-keyless rejects a signature other than the SET's" gen verify-keyless --payload p.json --signature kl2.b64 --cert leaf.pem --chain ca.chain.pem --set kl.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["Payload"]["logIndex"]+=1; open(sys.argv[2],"w").write(json.dumps(d,separators=(",",":")))' kl.set kl-tampered.set
expect_err 1 "SET failed" "verify-keyless rejects a SET whose payload was altered" gen verify-keyless --payload p.json --signature kl.b64 --cert leaf.pem --chain ca.chain.pem --set kl-tampered.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
gen set --rekor-key rekor --payload p.json --signature kl.b64 --cert leaf.pem --integrated-time $((NOW + 86400)) --log-index 1 --out kl-late.set
expect_err 1 "not valid at" "verify-keyless rejects a certificate expired at the SET's integrated time" gen verify-keyless --payload p.json --signature kl.b64 --cert leaf.pem --chain ca.chain.pem --set kl-late.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
gen set --rekor-key rekor --payload p.json --signature kl.b64 --cert leaf.pem --integrated-time "$NOW" --log-index 1 --hash-algorithm sha512 --out kl-sha512.set
expect_err 1 "sha256" "verify-keyless rejects a hashedrekord with another hash algorithm" gen verify-keyless --payload p.json --signature kl.b64 --cert leaf.pem --chain ca.chain.pem --set kl-sha512.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
gen set --rekor-key rekor --payload p.json --signature kl.b64 --cert leaf.pem --integrated-time "$NOW" --log-index 1 --api-version 0.0.2 --out kl-v2.set
expect_err 1 "version" "verify-keyless rejects another hashedrekord version" gen verify-keyless --payload p.json --signature kl.b64 --cert leaf.pem --chain ca.chain.pem --set kl-v2.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
for variant in v1 v2; do
    gen cert --ca ca --email signer@example.com --issuer https://issuer.example --issuer-ext $variant --out leaf-$variant
    gen sign --key leaf-$variant.key --payload p.json --out kl-$variant.b64
    gen set --rekor-key rekor --payload p.json --signature kl-$variant.b64 --cert leaf-$variant.pem --integrated-time "$NOW" --log-index 2 --out kl-$variant.set
    expect 0 "verify-keyless accepts a certificate with only the $variant issuer extension" gen verify-keyless --payload p.json --signature kl-$variant.b64 --cert leaf-$variant.pem --chain ca.chain.pem --set kl-$variant.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
done
negative_cert() { # negative_cert NAME REGEX DESCRIPTION CERT-OPTIONS...
    local name=$1 re=$2 desc=$3
    shift 3
    gen cert --ca ca "$@" --out "leaf-$name"
    gen sign --key "leaf-$name.key" --payload p.json --out "kl-$name.b64"
    gen set --rekor-key rekor --payload p.json --signature "kl-$name.b64" --cert "leaf-$name.pem" --integrated-time "$NOW" --log-index 3 --out "kl-$name.set"
    expect_err 1 "$re" "$desc" gen verify-keyless --payload p.json --signature "kl-$name.b64" --cert "leaf-$name.pem" --chain ca.chain.pem --set "kl-$name.set" --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
}
negative_cert inconsistent "inconsistent" "verify-keyless rejects inconsistent v1/v2 issuer extensions" --email signer@example.com --issuer https://issuer.example --issuer-v2 https://other.example
negative_cert noissuer "missing the OIDC issuer" "verify-keyless rejects a certificate without an issuer extension" --email signer@example.com
negative_cert noemail "email" "verify-keyless rejects a certificate without an email" --issuer https://issuer.example
negative_cert servereku "code-signing" "verify-keyless rejects a certificate without the code-signing EKU" --email signer@example.com --issuer https://issuer.example --eku server-auth
gen cert --ca ca --email signer@example.com --issuer https://issuer.example --eku none --out leaf-noeku
gen sign --key leaf-noeku.key --payload p.json --out kl-noeku.b64
gen set --rekor-key rekor --payload p.json --signature kl-noeku.b64 --cert leaf-noeku.pem --integrated-time "$NOW" --log-index 4 --out kl-noeku.set
expect 0 "verify-keyless accepts a certificate without any EKU extension (as Go's x509 does)" gen verify-keyless --payload p.json --signature kl-noeku.b64 --cert leaf-noeku.pem --chain ca.chain.pem --set kl-noeku.set --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
negative_cert old "not valid at" "verify-keyless rejects a certificate not yet valid at the integrated time" --email signer@example.com --issuer https://issuer.example --not-before "$(date -u -d @$((NOW + 3600)) +%Y-%m-%dT%H:%M:%SZ)"
gen set --rekor-key rekor --payload p.json --signature s-ecdsa-p256.b64 --pub k-ecdsa-p256.pub --integrated-time "$NOW" --log-index 7 --out key.set
gen sigfile --payload p.json --signature s-ecdsa-p256.b64 --annotation-file dev.sigstore.cosign/bundle=key.set --out key-rekor.sigfile
expect 0 "verify-set accepts a key+Rekor signature" gen verify-set --sigfile key-rekor.sigfile --rekor-pub rekor.pub --pub k-ecdsa-p256.pub
expect_err 1 "publicKey in Rekor SET does not match" "verify-set rejects it with another public key" gen verify-set --sigfile key-rekor.sigfile --rekor-pub rekor.pub --pub k-ecdsa-p384.pub
expect_err 2 "ECDSA" "set refuses a non-ECDSA Rekor key" gen set --rekor-key k-ed25519 --payload p.json --signature s-ecdsa-p256.b64 --pub k-ecdsa-p256.pub --integrated-time 1 --log-index 1 --out x.set
expect_err 2 "ISO 8601" "cert with a malformed --not-before fails clearly" gen cert --ca ca --email a@b --issuer x --not-before yesterday --out x
expect_err 2 "cannot read" "cert with a missing CA fails clearly" gen cert --ca nope --email a@b --issuer x --out x

echo "# Sigstore bundles (v0.3) checked by sigstore-python: ct-key, cert --ct-key, bundle, trust-config, verify-bundle"
if "$PY" -c 'import sigstore.verify' 2>/dev/null; then
    BD=sha256:65855d7eaf01d6d664dfafe2cd651fd2cae08a09f7b9e259d960e7b5a4cdd925
    ID="--cert-identity signer@example.com --cert-oidc-issuer https://issuer.example.com"
    expect 0 "ct-key" gen ct-key --out ct
    pycheck "ct-key prints the log ID (SHA-256 of the SubjectPublicKeyInfo)" '
import hashlib, sys
from cryptography.hazmat.primitives import serialization
k = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
spki = k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
assert open(sys.argv[2]).read().strip() == hashlib.sha256(spki).hexdigest()
' ct.pub "$W/last.out"
    gen ct-key --out ct2 >/dev/null
    expect 0 "cert --ct-key (leaf with an embedded SCT)" gen cert --ca ca --email signer@example.com --issuer https://issuer.example.com --ct-key ct.pem --out bleaf
    pycheck "the SCT is a v1 precertificate SCT from the CT key, over the TBS without the SCT list, issuer key hash of the intermediate" '
import hashlib, struct, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization, hashes
from cryptography.hazmat.primitives.asymmetric import ec
leaf = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
inter = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
ct = serialization.load_pem_public_key(open(sys.argv[3], "rb").read())
spki = lambda k: k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
[sct] = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
assert sct.version == x509.certificate_transparency.Version.v1
assert sct.entry_type == x509.certificate_transparency.LogEntryType.PRE_CERTIFICATE
assert sct.log_id == hashlib.sha256(spki(ct)).digest()
tbs = leaf.tbs_precertificate_bytes
ms = int(sct.timestamp.replace(tzinfo=__import__("datetime").timezone.utc).timestamp() * 1000)
signed = struct.pack("!BBQH", 0, 0, ms, 1) + hashlib.sha256(spki(inter.public_key())).digest() + len(tbs).to_bytes(3, "big") + tbs + b"\0\0"
ct.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
' bleaf.pem ca.intermediate.pem ct.pub
    gen cert --ca ca --email signer@example.com --issuer https://issuer.example.com --out bleaf-nosct
    gen cert --ca ca --email signer@example.com --issuer https://issuer.example.com --ct-key ct2.pem --out bleaf-ct2
    expect 0 "trust-config" gen trust-config --ca ca.chain.pem --rekor-pub rekor.pub --ct-pub ct.pub --out trust.json --trusted-root-out trusted-root.json
    pycheck "trust-config: ClientTrustConfig v0.1 with a trustedRoot 0.1 (chain, Rekor and CT keys with log IDs) and a signingConfig v0.2" '
import base64, hashlib, json, sys
c = json.load(open(sys.argv[1]))
assert c["mediaType"] == "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
tr = c["trustedRoot"]
assert tr["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
assert len(tr["certificateAuthorities"][0]["certChain"]["certificates"]) == 2
for l in tr["tlogs"] + tr["ctlogs"]:
    assert base64.b64decode(l["logId"]["keyId"]) == hashlib.sha256(base64.b64decode(l["publicKey"]["rawBytes"])).digest()
    assert l["publicKey"]["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"
assert c["signingConfig"]["mediaType"] == "application/vnd.dev.sigstore.signingconfig.v0.2+json"
assert json.load(open(sys.argv[2])) == tr
' trust.json trusted-root.json
    expect 0 "trust-config is accepted by sigstore-python's models" "$PY" -c 'import sys; from sigstore.models import ClientTrustConfig; ClientTrustConfig.from_json(open(sys.argv[1]).read()).trusted_root; ClientTrustConfig.from_json(open(sys.argv[1]).read()).signing_config' trust.json
    B="--digest $BD --cert bleaf.pem --cert-key bleaf.key --rekor-key rekor.pem --integrated-time $NOW"
    expect 0 "bundle --dsse (cosign sign's statement, with a subject name)" gen bundle $B --dsse --subject-name 127.0.0.1/t/img --log-index 9 --tree-size 13 --out b-dsse.json --envelope-out b-dsse.env --payload-out b-dsse.stmt
    pycheck "bundle layout: v0.3, certificate, one Rekor dsse 0.0.1 entry (int64 as strings), in-toto Statement v1 about the digest" '
import base64, hashlib, json, sys
b = json.load(open(sys.argv[1])); d = sys.argv[2].split(":")[1]
assert list(b) == ["mediaType", "verificationMaterial", "dsseEnvelope"] and b["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
vm = b["verificationMaterial"]; assert list(vm) == ["certificate", "tlogEntries"]
[e] = vm["tlogEntries"]
assert e["kindVersion"] == {"kind": "dsse", "version": "0.0.1"} and e["logIndex"] == "9" and e["inclusionProof"]["treeSize"] == "13"
assert isinstance(e["integratedTime"], str) and e["inclusionProof"]["logIndex"] == "9"
assert e["inclusionProof"]["checkpoint"]["envelope"].startswith("rekor.ferry.test - ")
env = b["dsseEnvelope"]; assert env["payloadType"] == "application/vnd.in-toto+json"
st = json.loads(base64.b64decode(env["payload"]))
assert st == {"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "127.0.0.1/t/img", "digest": {"sha256": d}}], "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}}, st
body = json.loads(base64.b64decode(e["canonicalizedBody"]))
assert body["spec"]["payloadHash"] == {"algorithm": "sha256", "value": hashlib.sha256(base64.b64decode(env["payload"])).hexdigest()}
assert json.load(open(sys.argv[3])) == {"payloadType": env["payloadType"], "payload": env["payload"], "signatures": [{"keyid": "", "sig": env["signatures"][0]["sig"]}]}
assert open(sys.argv[4], "rb").read() == base64.b64decode(env["payload"])
' b-dsse.json "$BD" b-dsse.env b-dsse.stmt
    expect 0 "sigstore-python (API) accepts the DSSE bundle" gen verify-bundle --bundle b-dsse.json --trust-config trust.json --digest "$BD" $ID
    expect 0 "sigstore-python (CLI verify identity --offline) accepts the DSSE bundle" gen verify-bundle --cli --bundle b-dsse.json --trust-config trust.json --digest "$BD" $ID
    expect_err 1 "no subject for digest" "sigstore-python rejects the DSSE bundle for another digest" gen verify-bundle --bundle b-dsse.json --trust-config trust.json --digest "$DIGEST" $ID
    expect_err 1 "SANs do not match|identity" "sigstore-python rejects another identity" gen verify-bundle --bundle b-dsse.json --trust-config trust.json --digest "$BD" --cert-identity other@example.com --cert-oidc-issuer https://issuer.example.com
    expect_err 1 "issuer" "sigstore-python rejects another issuer" gen verify-bundle --bundle b-dsse.json --trust-config trust.json --digest "$BD" --cert-identity signer@example.com --cert-oidc-issuer https://other.example.com
    expect 0 "bundle --dsse without a subject name (exactly cosign v3's sign statement)" gen bundle $B --dsse --out b-noname.json
    expect_err 0 "subject has no name" "sigstore-python's API accepts it (with a note)" gen verify-bundle --bundle b-noname.json --trust-config trust.json --digest "$BD" $ID
    expect_err 1 "subject.0.name" "sigstore-python's CLI rejects it: its in-toto model requires subject[].name" gen verify-bundle --cli --bundle b-noname.json --trust-config trust.json --digest "$BD" $ID
    echo '{"buildType":"x","n":1}' >pred.json
    expect 0 "bundle --dsse with another predicate" gen bundle $B --dsse --subject-name s --predicate-type https://example.com/p/v1 --predicate-json pred.json --out b-pred.json
    expect 0 "sigstore-python accepts it" gen verify-bundle --bundle b-pred.json --trust-config trust.json --digest "$BD" $ID
    check "predicateType reported" grep -q "predicateType=https://example.com/p/v1" "$W/last.out"
    expect 0 "bundle --message-signature" gen bundle $B --message-signature --log-index 0 --tree-size 1 --out b-ms.json
    pycheck "message-signature bundle: messageDigest SHA2_256 of the digest, hashedrekord 0.0.1 body" '
import base64, json, sys
b = json.load(open(sys.argv[1])); d = sys.argv[2].split(":")[1]
assert b["messageSignature"]["messageDigest"] == {"algorithm": "SHA2_256", "digest": base64.b64encode(bytes.fromhex(d)).decode()}
[e] = b["verificationMaterial"]["tlogEntries"]
assert e["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"} and e["inclusionProof"]["hashes"] == []
body = json.loads(base64.b64decode(e["canonicalizedBody"]))
assert body["spec"]["data"] == {"hash": {"algorithm": "sha256", "value": d}}
assert body["spec"]["signature"]["content"] == b["messageSignature"]["signature"]
' b-ms.json "$BD"
    expect 0 "sigstore-python (API) accepts the message-signature bundle for the digest" gen verify-bundle --bundle b-ms.json --trust-config trust.json --digest "$BD" $ID
    expect 0 "sigstore-python (CLI) accepts the message-signature bundle for the digest" gen verify-bundle --cli --bundle b-ms.json --trust-config trust.json --digest "$BD" $ID
    expect_err 1 "message digest mismatch|invalid for input" "sigstore-python rejects the message-signature bundle for another digest" gen verify-bundle --bundle b-ms.json --trust-config trust.json --digest "$DIGEST" $ID
    printf 'hello' >hello.txt
    HD=sha256:$(sha256sum hello.txt | cut -d' ' -f1)
    gen bundle --digest "$HD" --cert bleaf.pem --cert-key bleaf.key --rekor-key rekor --message-signature --out b-file.json
    expect 0 "a message-signature bundle verifies the file whose SHA-256 is the digest (--artifact)" gen verify-bundle --bundle b-file.json --trust-config trust.json --artifact hello.txt $ID
    # Each defect, for both content kinds; each bundle is otherwise valid.
    for kind in dsse message-signature; do
        sn=""; [ $kind = dsse ] && sn="--subject-name s"
        bdefect() { # bdefect NAME REGEX DESCRIPTION BUNDLE-OPTIONS...
            local name=$1 re=$2 desc=$3
            shift 3
            if gen bundle --digest "$BD" --$kind $sn --rekor-key rekor.pem --integrated-time "$NOW" "$@" --out "b-$kind-$name.json" 2>"$W/gen.err"; then
                expect_err 1 "$re" "$kind: sigstore-python rejects $desc" gen verify-bundle --bundle "b-$kind-$name.json" --trust-config trust.json --digest "$BD" $ID
            else
                bad "$kind: bundle for $desc"; sed 's/^/    | /' "$W/gen.err"
            fi
        }
        bdefect noset "must contain an inclusion promise" "no inclusion promise (--no-set)" --cert bleaf.pem --cert-key bleaf.key --no-set
        bdefect othersetbody "SET: invalid inclusion promise" "a SET over another body (--set-for-other-body)" --cert bleaf.pem --cert-key bleaf.key --set-for-other-body
        bdefect noproof "inclusionProof" "no inclusion proof (--no-inclusion-proof)" --cert bleaf.pem --cert-key bleaf.key --no-inclusion-proof
        bdefect badproof "inclusion proof contains invalid root hash" "a wrong inclusion proof hash (--bad-inclusion-proof)" --cert bleaf.pem --cert-key bleaf.key --bad-inclusion-proof
        bdefect badsig "DSSE: invalid signature|Signature is invalid for input" "an altered signature (--tamper-signature)" --cert bleaf.pem --cert-key bleaf.key --tamper-signature
        bdefect late "not valid at validation time" "an integrated time after the certificate expired" --cert bleaf.pem --cert-key bleaf.key --integrated-time $((NOW + 86400))
        bdefect nosct "signed certificate timestamp" "a certificate without an SCT" --cert bleaf-nosct.pem --cert-key bleaf-nosct.key
        bdefect othersct "SCT verify failed" "an SCT from a CT key not in the trust root" --cert bleaf-ct2.pem --cert-key bleaf-ct2.key
        bdefect otherrekor "checkpoint: invalid signature" "a log entry from a Rekor key not in the trust root" --cert bleaf.pem --cert-key bleaf.key --rekor-key rekor2.pem
        bdefect keyed "expected certificate in bundle" "a keyed bundle (verificationMaterial.publicKey): it verifies certificates only" --key k-ecdsa-p256.pem
    done
    gen bundle $B --dsse --subject-name s --tamper-payload --out b-dsse-tampered.json
    expect_err 1 "DSSE: invalid signature" "dsse: sigstore-python rejects a payload changed after signing (--tamper-payload)" gen verify-bundle --bundle b-dsse-tampered.json --trust-config trust.json --digest "$BD" $ID
    expect_err 1 "DSSE: invalid signature" "dsse: ... also through the CLI" gen verify-bundle --cli --bundle b-dsse-tampered.json --trust-config trust.json --digest "$BD" $ID
    gen bundle --digest "$BD" --dsse --subject-name s --cert bleaf.pem --cert-key bleaf.key --out b-notlog.json
    expect_err 1 "exactly one log entry" "sigstore-python rejects a bundle without a tlog entry" gen verify-bundle --bundle b-notlog.json --trust-config trust.json --digest "$BD" $ID
    gen trust-config --ca ca2.chain.pem --rekor-pub rekor.pub --ct-pub ct.pub --out trust-ca2.json
    expect_err 1 "certificate chain" "sigstore-python rejects the bundle under another CA" gen verify-bundle --bundle b-dsse.json --trust-config trust-ca2.json --digest "$BD" $ID
    expect_err 2 "tamper-payload applies to --dsse" "bundle --tamper-payload with a message signature fails clearly" gen bundle $B --message-signature --tamper-payload --out x.json
    expect_err 2 "need --rekor-key" "bundle defect switches without --rekor-key fail clearly" gen bundle --digest "$BD" --dsse --cert bleaf.pem --cert-key bleaf.key --no-set --out x.json
    expect_err 2 "does not match" "bundle with a key that is not the certificate's fails clearly" gen bundle --digest "$BD" --dsse --cert bleaf.pem --cert-key k-ecdsa-p256.pem --out x.json
    expect_err 2 "tree-size" "bundle with --tree-size not above --log-index fails clearly" gen bundle $B --dsse --log-index 5 --tree-size 5 --out x.json
else
    skip "bundle tests: sigstore-python not installed (pip install -r $HERE/requirements.txt)"
fi

echo "# registry: attach / fetch-attachment"
REGISTRY_BIN=${DOCKER_REGISTRY:-/usr/bin/docker-registry}
if [ -x "$REGISTRY_BIN" ]; then
    PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p reg
    cat >reg/config.yml <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $W/reg/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
EOF
    "$REGISTRY_BIN" serve reg/config.yml >reg/log 2>&1 &
    REG_PID=$!
    for _ in $(seq 1 100); do
        "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$PORT" 2>/dev/null && break
        sleep 0.1
    done
    R=http://127.0.0.1:$PORT
    RD=sha256:65855d7eaf01d6d664dfafe2cd651fd2cae08a09f7b9e259d960e7b5a4cdd925
    TAG=sha256-65855d7eaf01d6d664dfafe2cd651fd2cae08a09f7b9e259d960e7b5a4cdd925.sig
    gen payload --digest "$RD" --reference "127.0.0.1:$PORT/t/img:v1" --out rp.json
    gen sign --key k-ecdsa-p256.pem --payload rp.json --out rp1.b64
    gen sign --key k-ed25519.pem --payload rp.json --out rp2.b64
    expect 0 "attach one signature" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json:rp1.b64 --out att1.json
    pycheck "attachment manifest: OCI, config descriptor, one simple-signing layer with the signature annotation" '
import json, sys, hashlib
m = json.load(open(sys.argv[1])); pl = open(sys.argv[2], "rb").read(); sig = open(sys.argv[3]).read().strip()
assert m["schemaVersion"] == 2 and m["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
[l] = m["layers"]
assert l == {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": len(pl), "digest": "sha256:" + hashlib.sha256(pl).hexdigest(), "annotations": {"dev.cosignproject.cosign/signature": sig}}, l
' att1.json rp.json rp1.b64
    expect 0 "attach a second signature (appends)" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json:rp2.b64 --annotation extra=1
    expect 0 "attach the first signature again (deduplicated)" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json:rp1.b64
    check "dedup reported" grep -q "added=0" "$W/last.out"
    expect 1 "fetch-attachment --pub ecdsa fails on the Ed25519 layer" gen fetch-attachment --registry "$R" --repo t/img --digest "$RD" --out f0 --pub k-ecdsa-p256.pub
    expect 0 "fetch-attachment" gen fetch-attachment --registry "$R" --repo t/img --digest "$RD" --out f1
    check "fetched layer 1 payload is the payload" cmp f1/layer-1.payload rp.json
    check "fetched layer 2 payload is the payload" cmp f1/layer-2.payload rp.json
    check "fetched layer 1 signature" cmp f1/layer-1.sig rp1.b64
    check "fetched layer 2 signature" cmp f1/layer-2.sig rp2.b64
    expect 0 "verify fetched layer 1" gen verify --pub k-ecdsa-p256.pub --payload f1/layer-1.payload --signature f1/layer-1.sig
    expect 0 "verify fetched layer 2" gen verify --pub k-ed25519.pub --payload f1/layer-2.payload --signature f1/layer-2.sig
    expect 0 "read-sigfile --pub of fetched signature-2" gen read-sigfile --in f1/signature-2 --pub k-ed25519.pub
    check "fetched signature-2 keeps the extra annotation" grep -q '"extra": "1"' "$W/last.out"
    pycheck "config: cosign layout, one diff_id and one history entry per layer" '
import json, sys
c = json.load(open(sys.argv[1]))
assert list(c) == ["architecture", "created", "history", "os", "rootfs", "config"], list(c)
assert c["created"] == "0001-01-01T00:00:00Z" and c["history"] == [{"created": "0001-01-01T00:00:00Z"}] * 2
m = json.load(open(sys.argv[2]))
assert c["rootfs"] == {"type": "layers", "diff_ids": [l["digest"] for l in m["layers"]]}
' f1/config.json f1/manifest.json
    printf '<html><body>Not a signature</body></html>\n' >html.txt
    expect 0 "attach --raw-layer (an HTML page as a simple-signing layer)" gen attach --registry "$R" --repo t/img --digest "$RD" --raw-layer html.txt:application/vnd.dev.cosign.simplesigning.v1+json
    expect 0 "attach --layer-media-type (a signature with another media type)" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json:rp1.b64 --layer-media-type application/vnd.example.other
    expect 0 "attach --omit-signature-annotation" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json:rp1.b64 --omit-signature-annotation --annotation marker=nosig
    expect 0 "attach --bad-base64" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json:rp1.b64 --bad-base64
    expect 0 "fetch-attachment of the six layers" gen fetch-attachment --registry "$R" --repo t/img --digest "$RD" --out f2
    check "six layers fetched" test "$(grep -c '^layer ' "$W/last.out")" -eq 6
    check "raw layer content" cmp f2/layer-3.payload html.txt
    check "other media type kept" grep -q 'layer 4: mediaType=application/vnd.example.other' "$W/last.out"
    check "layer without signature annotation" sh -c '[ ! -e f2/layer-5.sig ] && grep -q "\"marker\": \"nosig\"" f2/layer-5.descriptor.json'
    expect 1 "the bad-base64 signature does not verify" gen verify --pub k-ecdsa-p256.pub --payload f2/layer-6.payload --signature f2/layer-6.sig
    expect 0 "attach --replace starts a fresh attachment (containers/image config style)" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json:rp1.b64 --replace --config-style containers-image
    expect 0 "fetch-attachment --pub after --replace" gen fetch-attachment --registry "$R" --repo t/img --digest "$RD" --out f3 --pub k-ecdsa-p256.pub
    check "one layer after --replace" test "$(grep -c '^layer ' "$W/last.out")" -eq 1
    check "containers/image config layout" grep -qx '{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":\["sha256:[0-9a-f]*"\]}}' f3/config.json
    expect 0 "attach under an explicit --tag" gen attach --registry "$R" --repo t/img --digest "$RD" --tag custom-tag --sig rp.json:rp1.b64
    expect 0 "fetch-attachment --tag" gen fetch-attachment --registry "$R" --repo t/img --digest "$RD" --tag custom-tag --out f4 --pub k-ecdsa-p256.pub
    expect 0 "attach --sigfile (a keyless signature file with certificate, chain and bundle)" gen attach --registry "$R" --repo t/kl --digest "$RD" --sigfile kl.sigfile
    expect 0 "fetch-attachment of the keyless attachment" gen fetch-attachment --registry "$R" --repo t/kl --digest "$RD" --out fkl
    check "its signature file is identical to the one attached" cmp fkl/signature-1 kl.sigfile
    expect 0 "verify-keyless accepts the fetched signature file" gen verify-keyless --sigfile fkl/signature-1 --rekor-pub rekor.pub --ca-root ca.root.pem --email signer@example.com --issuer https://issuer.example
    expect_err 1 "does not exist" "fetch-attachment of a missing attachment" gen fetch-attachment --registry "$R" --repo t/img --digest "$DIGEST" --out f5
    expect_err 2 "only 127.0.0.1" "attach refuses localhost" gen attach --registry "http://localhost:$PORT" --repo t/img --digest "$RD" --sig rp.json:rp1.b64
    expect_err 2 "only 127.0.0.1" "attach refuses another host" gen attach --registry "http://192.0.2.1:$PORT" --repo t/img --digest "$RD" --sig rp.json:rp1.b64
    expect_err 2 "only 127.0.0.1" "fetch-attachment refuses another host" gen fetch-attachment --registry "http://example.com:80" --repo t/img --digest "$RD" --out f6
    expect_err 2 "http://127.0.0.1" "attach refuses https" gen attach --registry "https://127.0.0.1:$PORT" --repo t/img --digest "$RD" --sig rp.json:rp1.b64
    expect_err 2 "repository name" "attach refuses a bad repository name" gen attach --registry "$R" --repo T/Img --digest "$RD" --sig rp.json:rp1.b64
    expect_err 2 "PAYLOADFILE:SIGFILE" "attach with a malformed --sig" gen attach --registry "$R" --repo t/img --digest "$RD" --sig rp.json
    expect_err 2 "nothing to attach" "attach with nothing to attach" gen attach --registry "$R" --repo t/img --digest "$RD"
    expect_err 2 "not ALGO:HEX" "attach with a bad digest" gen attach --registry "$R" --repo t/img --digest sha256:abc --sig rp.json:rp1.b64

    echo "# registry: push-referrer / list-referrers (OCI 1.1, cosign v3 bundles) and .att / .sbom attachments"
    "$PY" - "$PORT" >subject.digest <<'PYEOF'
import hashlib, json, sys, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/v2/t/ref"
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}'
cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
loc = op.open(urllib.request.Request(base + "/blobs/uploads/", data=b"", method="POST")).headers["Location"]
op.open(urllib.request.Request(loc + ("&" if "?" in loc else "?") + "digest=" + cd, data=cfg, method="PUT", headers={"Content-Type": "application/octet-stream"}))
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)}, "layers": []}).encode()
op.open(urllib.request.Request(base + "/manifests/v1", data=m, method="PUT", headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
print("sha256:" + hashlib.sha256(m).hexdigest())
PYEOF
    SUBJ=$(cat subject.digest)
    SUBJ_TAG=$(echo "$SUBJ" | tr : -)
    RB="--registry 127.0.0.1:$PORT --repo t/ref --subject-digest $SUBJ"
    BT=application/vnd.dev.sigstore.bundle.v0.3+json
    if [ -e bleaf.pem ]; then
        gen bundle --digest "$SUBJ" --dsse --cert bleaf.pem --cert-key bleaf.key --rekor-key rekor.pem --out ref-bundle.json --envelope-out ref.env
    else
        printf '{"mediaType":"%s"}' "$BT" >ref-bundle.json
        printf '{"payloadType":"application/vnd.in-toto+json","payload":"%s","signatures":[]}' "$(printf '{"predicateType":"https://example.com/p"}' | base64 -w0)" >ref.env
    fi
    expect 0 "push-referrer (a bundle, as cosign sign v3 pushes it)" gen push-referrer $RB --file ref-bundle.json --artifact-type "$BT" --predicate-type https://sigstore.dev/cosign/sign/v1 --created 2026-01-02T03:04:05Z --out ref-manifest.json
    REF1=$(cat "$W/last.out")
    pycheck "referrer manifest: cosign's layout (empty config with artifactType, one bundle layer, annotations, subject, artifactType), pushed by digest" '
import hashlib, json, sys
raw = open(sys.argv[1], "rb").read(); m = json.loads(raw); b = open(sys.argv[2], "rb").read()
assert "sha256:" + hashlib.sha256(raw).hexdigest() == sys.argv[4]
assert list(m) == ["schemaVersion", "mediaType", "config", "layers", "annotations", "subject", "artifactType"], list(m)
bt = "application/vnd.dev.sigstore.bundle.v0.3+json"
assert m["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "artifactType": bt}
assert m["layers"] == [{"mediaType": bt, "size": len(b), "digest": "sha256:" + hashlib.sha256(b).hexdigest()}]
assert m["annotations"] == {"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1", "org.opencontainers.image.created": "2026-01-02T03:04:05Z"}
assert m["subject"]["digest"] == sys.argv[3] and m["subject"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
assert m["artifactType"] == bt
' ref-manifest.json ref-bundle.json "$SUBJ" "$REF1"
    expect 0 "push-referrer the same bundle again (no duplicate in the fallback tag)" gen push-referrer $RB --file ref-bundle.json --artifact-type "$BT" --predicate-type https://sigstore.dev/cosign/sign/v1 --created 2026-01-02T03:04:05Z
    check "same referrer digest (reproducible with --created)" test "$(cat "$W/last.out")" = "$REF1"
    expect 0 "push-referrer a DSSE envelope (another artifact type; annotations copied into the fallback index)" gen push-referrer $RB --file ref.env --artifact-type application/vnd.in-toto+json --layer-media-type application/vnd.dsse.envelope.v1+json --no-created --annotation note=x --fallback-annotations
    REF2=$(cat "$W/last.out")
    expect 0 "list-referrers" gen list-referrers $RB
    check "list-referrers fell back to the sha256-HEX tag (docker-registry has no Referrers API)" grep -q "source: fallback tag $SUBJ_TAG" "$W/last.err"
    pycheck "fallback index: OCI index, both referrers sorted by digest, artifactType each (annotations only with --fallback-annotations)" '
import json, sys
i = json.load(open(sys.argv[1])); r1, r2 = sys.argv[2], sys.argv[3]
assert i["schemaVersion"] == 2 and i["mediaType"] == "application/vnd.oci.image.index.v1+json"
ds = {d["digest"]: d for d in i["manifests"]}
assert sorted(ds) == [d["digest"] for d in i["manifests"]] and set(ds) == {r1, r2}, i
assert ds[r1]["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json" and "annotations" not in ds[r1]
assert ds[r1]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
assert ds[r2]["artifactType"] == "application/vnd.in-toto+json" and ds[r2]["annotations"] == {"note": "x"}
' "$W/last.out" "$REF1" "$REF2"
    expect 0 "list-referrers --artifact-type" gen list-referrers $RB --artifact-type "$BT"
    check "only the bundle referrer listed" sh -c "grep -c '\"digest\"' '$W/last.out' | grep -qx 1 && grep -q '$REF1' '$W/last.out'"
    expect 0 "push-referrer --no-fallback-tag leaves the index alone" gen push-referrer $RB --file ref-bundle.json --artifact-type "$BT" --created 2020-01-01T00:00:00Z --no-fallback-tag
    gen list-referrers $RB >lr.json 2>/dev/null
    check "still two referrers" test "$(grep -c '"digest"' lr.json)" -eq 2
    expect 0 "list-referrers of a digest without referrers prints an empty index" gen list-referrers --registry "127.0.0.1:$PORT" --repo t/ref --subject-digest "$DIGEST"
    check "empty manifests list" grep -q '"manifests": \[\]' "$W/last.out"
    expect_err 2 "does not exist" "push-referrer for a missing subject fails clearly" gen push-referrer --registry "127.0.0.1:$PORT" --repo t/ref --subject-digest "$DIGEST" --file ref-bundle.json --artifact-type "$BT"
    expect_err 2 "only 127.0.0.1" "push-referrer refuses another host" gen push-referrer --registry "192.0.2.1:$PORT" --repo t/ref --subject-digest "$SUBJ" --file ref-bundle.json --artifact-type "$BT"
    expect 0 "attach --attestation (cosign v2 .att)" gen attach --registry "$R" --repo t/ref --digest "$SUBJ" --attestation ref.env --out att-manifest.json
    check "tagged sha256-HEX.att" grep -q "t/ref:$SUBJ_TAG.att " "$W/last.out"
    pycheck ".att layer: the DSSE envelope, application/vnd.dsse.envelope.v1+json, predicateType and an empty signature annotation" '
import hashlib, json, sys
m = json.load(open(sys.argv[1])); e = open(sys.argv[2], "rb").read()
[l] = m["layers"]
st = json.loads(__import__("base64").b64decode(json.loads(e)["payload"]))
assert l == {"mediaType": "application/vnd.dsse.envelope.v1+json", "size": len(e), "digest": "sha256:" + hashlib.sha256(e).hexdigest(),
             "annotations": {"dev.cosignproject.cosign/signature": "", "predicateType": st["predicateType"]}}, l
' att-manifest.json ref.env
    expect 0 "fetch-attachment --kind att" gen fetch-attachment --registry "$R" --repo t/ref --digest "$SUBJ" --kind att --out fatt
    check "the fetched .att layer is the envelope" cmp fatt/layer-1.payload ref.env
    printf '{"spdxVersion":"SPDX-2.3","name":"t"}' >sbom.spdx.json
    expect 0 "attach --sbom (cosign .sbom)" gen attach --registry "$R" --repo t/ref --digest "$SUBJ" --sbom sbom.spdx.json --out sbom-manifest.json
    check "tagged sha256-HEX.sbom" grep -q "t/ref:$SUBJ_TAG.sbom " "$W/last.out"
    pycheck ".sbom layer: the file, text/spdx+json, no annotations; cosign config layout" '
import hashlib, json, sys
m = json.load(open(sys.argv[1])); f = open(sys.argv[2], "rb").read()
assert m["layers"] == [{"mediaType": "text/spdx+json", "size": len(f), "digest": "sha256:" + hashlib.sha256(f).hexdigest()}]
assert m["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json" and "annotations" not in m
' sbom-manifest.json sbom.spdx.json
    expect 0 "fetch-attachment --kind sbom" gen fetch-attachment --registry "$R" --repo t/ref --digest "$SUBJ" --kind sbom --out fsbom
    check "the fetched .sbom layer is the file" cmp fsbom/layer-1.payload sbom.spdx.json

    if command -v skopeo >/dev/null 2>&1; then
        echo "# skopeo (containers/image) cross-checks of the attachment format"
        mkdir -p layout/blobs/sha256 regd
        "$PY" - <<'EOF'
import gzip, hashlib, io, json, tarfile
def put(b):
    d = hashlib.sha256(b).hexdigest(); open(f"layout/blobs/sha256/{d}", "wb").write(b); return "sha256:" + d
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"hello\n"; ti = tarfile.TarInfo("hello.txt"); ti.size = len(data); ti.mtime = 0; t.addfile(ti, io.BytesIO(data))
raw = buf.getvalue(); gz = gzip.compress(raw, mtime=0); ld = put(gz)
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}, "config": {}}).encode()
cd = put(cfg)
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)}, "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(gz)}]}).encode()
md = put(m)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, open("layout/index.json", "w"))
open("layout/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
open("layout.digest", "w").write(md)
EOF
        SD=$(cat layout.digest)
        printf 'docker:\n  127.0.0.1:%s:\n    use-sigstore-attachments: true\n' "$PORT" >regd/local.yaml
        echo '{"default":[{"type":"insecureAcceptAnything"}]}' >policy.json
        sk() { skopeo --policy "$W/policy.json" --registries.d "$W/regd" "$@"; }
        check "skopeo pushes a test image" sk copy --dest-tls-verify=false oci:layout:v1 "docker://127.0.0.1:$PORT/t/sk:v1"
        gen payload --digest "$SD" --reference "127.0.0.1:$PORT/t/sk:v1" --out sk.json
        gen sign --key k-ecdsa-p256.pem --payload sk.json --out sk1.b64
        gen sign --key k-rsa-2048.pem --payload sk.json --out sk2.b64
        gen attach --registry "$R" --repo t/sk --digest "$SD" --sig sk.json:sk1.b64 --sig sk.json:sk2.b64 --annotation note=x >/dev/null
        check "skopeo copies the image and its gen.py attachment to dir:" sk copy --src-tls-verify=false "docker://127.0.0.1:$PORT/t/sk:v1" dir:skdir
        gen sigfile --payload sk.json --signature sk1.b64 --annotation note=x --out sk1.sigfile
        gen sigfile --payload sk.json --signature sk2.b64 --annotation note=x --out sk2.sigfile
        check "containers/image read layer 1 exactly as gen.py's sigfile" cmp skdir/signature-1 sk1.sigfile
        check "containers/image read layer 2 exactly as gen.py's sigfile" cmp skdir/signature-2 sk2.sigfile
        check "skopeo writes the signatures as a sigstore attachment (containers/image writer)" sk copy --dest-tls-verify=false dir:skdir "docker://127.0.0.1:$PORT/t/sk2:v1"
        expect 0 "fetch-attachment reads containers/image's attachment and verifies layer 1" gen fetch-attachment --registry "$R" --repo t/sk2 --digest "$SD" --out skf
        check "its signature files equal containers/image's" sh -c 'cmp skf/signature-1 skdir/signature-1 && cmp skf/signature-2 skdir/signature-2'
        expect 0 "verify containers/image-written layer 1" gen verify --pub k-ecdsa-p256.pub --payload skf/layer-1.payload --signature skf/layer-1.sig
        expect 0 "verify containers/image-written layer 2" gen verify --pub k-rsa-2048.pub --payload skf/layer-2.payload --signature skf/layer-2.sig
        check "containers/image wrote its config layout" grep -qx '{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":\[.*\]}}' skf/config.json
        expect 0 "gen.py appends to containers/image's attachment" gen attach --registry "$R" --repo t/sk2 --digest "$SD" --sig sk.json:rp2.b64
        check "skopeo reads the appended attachment" sk copy --src-tls-verify=false "docker://127.0.0.1:$PORT/t/sk2:v1" dir:skdir2
        check "three signatures after the append" sh -c '[ -e skdir2/signature-3 ] && [ ! -e skdir2/signature-4 ] && cmp skdir2/signature-1 skdir/signature-1'
    else
        skip "skopeo cross-checks: skopeo not installed"
    fi
else
    skip "registry tests: no docker-registry binary at $REGISTRY_BIN (apt-get install docker-registry, or set DOCKER_REGISTRY)"
fi

echo
echo "selftest: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
