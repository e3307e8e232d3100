#!/usr/bin/env bash
# Logs a user in through the development provider's real form with curl and prints the
# ctIDENTITY cookie value. Usage: bench/login.sh SERVICE_URL [USER] [PASSWORD]
set -euo pipefail
service=${1:?service URL}
user=${2:-alice}
password=${3:-alice-password}
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
# /login → provider → its login form (curl follows the redirects and keeps cookies).
page=$(curl -sS -L -c "$jar" -b "$jar" "$service/login?returnURL=$service/userinfo&provider=local" -w '\n%{url_effective}')
form_url=$(printf '%s\n' "$page" | tail -n 1)
action=$(printf '%s\n' "$page" | grep -o 'action="/interaction/[^"]*/login"' | head -n 1 | sed 's/action="//; s/"$//')
origin=$(printf '%s\n' "$form_url" | sed -E 's#^(https?://[^/]+).*#\1#')
[ -n "$action" ] || { echo "no login form found at $form_url" >&2; exit 1; }
# Submit the form; redirects run through consent and /callback back to /userinfo.
curl -sS -L -c "$jar" -b "$jar" -o /dev/null \
  --data-urlencode "login=$user" --data-urlencode "password=$password" "$origin$action"
awk '$6 == "ctIDENTITY" { print $7 }' "$jar" | tail -n 1
