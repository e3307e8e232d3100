# Shared by bench/run and bench/ab (sourced).

# bench_config FILE SERVICE_PORT OP_PORT REDIS_URL KEY_PREFIX [LOGOUT_ISSUER_PORT]
# config/default.toml with store = redis, a fresh key prefix, our ports, Bearer accepted,
# two token targets and, with a logout issuer port, a second provider entry ("bcl") that
# only signs logout tokens.
bench_config() {
  cat >"$1" <<TOML
[server]
bind = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$2"
[session]
store = "redis"
redis_url = "$4"
key_prefix = "$5"
[redirects]
allowed_origins = ["http://127.0.0.1:3000", "http://localhost:3000"]
allow_relative = true
[cors]
allowed_origins = ["http://127.0.0.1:3000", "http://localhost:3000"]
[[providers]]
id = "local"
name = "Local login"
issuer = "http://127.0.0.1:$3"
client_id = "identity"
client_secret = "identity-dev-secret"
scopes = ["openid", "profile", "email", "offline_access"]
name_claim = "preferred_username"
roles_claim = "realm_access.roles"
groups_claim = "groups"
attributes = ["email"]
use_userinfo_endpoint = true
accept_bearer = true
bearer_audience = "identity"
[[targets]]
url = "http://127.0.0.1:9504/"
strategy = "jwt"
lifetime = "5m"
audience = "internal-api"
[[targets]]
url = "http://127.0.0.1:9502/"
strategy = "client_credentials"
token_url = "http://127.0.0.1:$3/token"
client_id = "service-b"
client_secret = "service-b-secret"
audience = "reports"
TOML
  if [ -n "${6:-}" ]; then
    cat >>"$1" <<TOML
[[providers]]
id = "bcl"
name = "Logout tokens"
issuer = "http://127.0.0.1:$6"
client_id = "identity"
client_secret = "unused"
TOML
  fi
}
