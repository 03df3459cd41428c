#!/usr/bin/env bash
# Triggers one event through Clarion's HTTP API (POST /apps/{app_id}/events) with nothing but
# bash, curl and openssl: the signing that pusher-php-server does for Laravel, written out.
#
#   examples/scripts/trigger.sh CHANNEL EVENT [DATA]
#
#   examples/scripts/trigger.sh orders created '{"id":1}'
#   examples/scripts/trigger.sh private-provider.1 'App\Events\ReservationCreated' '{"reservation":{"id":42}}'
#
# DATA is sent as the event's data string, byte for byte (default "{}"); it is usually JSON, as
# Laravel sends it. Environment (the same variables that configure a single-app Clarion):
#
#   CLARION_URL         default http://127.0.0.1:6001 (with the server's path_prefix, if any:
#                       http://host/ws; the prefix is not signed)
#   CLARION_APP_ID      default app-id       (the development app)
#   CLARION_APP_KEY     default app-key
#   CLARION_APP_SECRET  default app-secret
#
# Prints the server's answer ({} on success) and exits 0 on HTTP 200. Otherwise prints the status
# and the server's message on stderr and exits 1 (2 for bad usage, curl's exit code when the
# server cannot be reached). The secret is passed to openssl on its command line, so other users
# of the machine can see it in the process list while the script runs.
#
# With Clarion installed, `clarion trigger --channel C --event E --data D` does the same (see
# docs/cli.md).
set -euo pipefail
export LC_ALL=C # byte-wise string operations, whatever the locale

usage() {
  echo "usage: ${0##*/} CHANNEL EVENT [DATA]" >&2
  exit 2
}
[[ $# -ge 2 && $# -le 3 && -n $1 && -n $2 ]] || usage

url=${CLARION_URL:-http://127.0.0.1:6001}
url=${url%/}
app_id=${CLARION_APP_ID:-app-id}
app_key=${CLARION_APP_KEY:-app-key}
app_secret=${CLARION_APP_SECRET:-app-secret}

# A bash string as the inside of a JSON string: backslash and quote escaped, control characters
# as \n, \t, … or \u00XX. Other bytes (UTF-8 included) are valid JSON as they are.
json_escape() {
  local s=$1 i c
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  s=${s//$'\b'/\\b}
  s=${s//$'\f'/\\f}
  for i in {1..31}; do
    case $i in 8 | 9 | 10 | 12 | 13) continue ;; esac
    printf -v c "\\x$(printf %02x "$i")"
    s=${s//"$c"/$(printf '\\u%04x' "$i")}
  done
  printf '%s' "$s"
}

# Percent-encodes a value for the URL (the signature covers the decoded value).
url_encode() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9.~_-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

data='{}'
[[ $# -lt 3 ]] || data=$3
body="{\"name\":\"$(json_escape "$2")\",\"channel\":\"$(json_escape "$1")\",\"data\":\"$(json_escape "$data")\"}"
# openssl prints "MD5(stdin)= <hex>", "(stdin)= <hex>" or just "<hex>", depending on its
# version: keep the last word.
body_md5=$(printf '%s' "$body" | openssl dgst -md5)
body_md5=${body_md5##* }
timestamp=${EPOCHSECONDS:-$(date +%s)} # bash 5 has EPOCHSECONDS
path="/apps/$app_id/events"
# Pusher's string to sign: METHOD\nPATH\nQUERY, query keys sorted, values not encoded.
query="auth_key=$app_key&auth_timestamp=$timestamp&auth_version=1.0&body_md5=$body_md5"
signature=$(printf 'POST\n%s\n%s' "$path" "$query" | openssl dgst -sha256 -hmac "$app_secret")
signature=${signature##* }

request_url="$url/apps/$(url_encode "$app_id")/events?auth_key=$(url_encode "$app_key")&auth_timestamp=$timestamp&auth_version=1.0&body_md5=$body_md5&auth_signature=$signature"

status=0
response=$(curl -sS --connect-timeout 5 --max-time 30 -X POST \
  -H 'Content-Type: application/json' --data-binary "$body" \
  -w '\n%{http_code}' "$request_url") || status=$?
if [[ $status -ne 0 ]]; then
  echo "${0##*/}: could not reach $url (curl exit code $status)" >&2
  exit "$status"
fi
code=${response##*$'\n'}
answer=${response%$'\n'*}

if [[ $code == 200 ]]; then
  printf '%s\n' "$answer"
  exit 0
fi

# Clarion answers errors with {"error":"<message>"}: show the message itself when it is there.
message=$answer
error_re='"error":"(([^"\\]|\\.)*)"'
if [[ $answer =~ $error_re ]]; then
  message=${BASH_REMATCH[1]}
  message=${message//\\\\/$'\x01'}
  message=${message//\\\"/\"}
  message=${message//\\\//\/}
  message=${message//$'\x01'/\\}
fi
echo "${0##*/}: HTTP $code: $message" >&2
exit 1
