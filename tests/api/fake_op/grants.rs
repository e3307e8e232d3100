//! The token endpoint: client authentication first, then one function per grant
//! (authorization code, refresh, client credentials, password, token exchange);
//! the tokens themselves are minted in `minting`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::*;

/// A defect put into the ID tokens of the following code exchanges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdTokenFault {
    /// `nonce` differs from the one in the authorization request.
    WrongNonce,
    /// No `nonce` at all.
    NoNonce,
    /// `aud` is another client.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `exp` (and `iat`) in the past.
    Expired,
    /// `iat` an hour in the future.
    IssuedInFuture,
    /// Signed by the attacker key with the published `kid`.
    BadSignature,
    /// Signed by the attacker key with a `kid` the JWKS never had.
    UnknownKid,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the provider's public key PEM as HMAC secret.
    HmacKeyConfusion,
    /// `aud: [client_id, "other-client"]` and no `azp`.
    MultipleAudNoAzp,
    /// `azp` is another client (single `aud`).
    WrongAzp,
}

impl Inner {
    pub(super) fn token(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let form = FormParams::parse(&req.body);
        let grant = form.get("grant_type").unwrap_or_default().to_owned();
        *st.token_calls.entry(grant.clone()).or_default() += 1;
        st.last_token_request.insert(grant.clone(), form.clone());
        let response = match self.token_reply(req, &form, &grant, st) {
            Ok(body) => json_response(200, body).insert_header("pragma", "no-cache"),
            Err(error) => error.response(),
        };
        match st.token_delay {
            Some(d) => response.set_delay(d),
            None => response,
        }
    }

    pub(super) fn token_reply(
        &self,
        req: &Request,
        form: &FormParams,
        grant: &str,
        st: &mut State,
    ) -> Reply {
        if let Some((status, code)) = &st.token_failure {
            return Err(oauth_error(
                *status,
                code,
                "failure switched on by the test",
            ));
        }
        let client_id = self.authenticate_client(req, form, st)?;
        match grant {
            "authorization_code" => self.grant_code(form, &client_id, st),
            "refresh_token" => self.grant_refresh(form, &client_id, st),
            "client_credentials" => self.grant_client_credentials(form, &client_id, st),
            "password" => self.grant_password(form, &client_id, st),
            TOKEN_EXCHANGE_GRANT => self.grant_exchange(form, &client_id, st),
            "" => Err(invalid_request("missing grant_type")),
            _ => Err(oauth_error(
                400,
                "unsupported_grant_type",
                "unsupported grant_type",
            )),
        }
    }

    pub(super) fn grant_code(&self, form: &FormParams, client_id: &str, st: &mut State) -> Reply {
        let code = form
            .get("code")
            .ok_or_else(|| invalid_request("missing code"))?;
        let g = st
            .codes
            .remove(code)
            .ok_or_else(|| invalid_grant("unknown or used code"))?;
        if g.client_id != client_id {
            return Err(invalid_grant("code issued to another client"));
        }
        if form.get("redirect_uri") != Some(g.redirect_uri.as_str()) {
            return Err(invalid_grant("redirect_uri mismatch"));
        }
        let verifier = form
            .get("code_verifier")
            .ok_or_else(|| invalid_grant("missing code_verifier"))?;
        if !(43..=128).contains(&verifier.len()) {
            return Err(invalid_grant("code_verifier length"));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        if URL_SAFE_NO_PAD.encode(digest.as_ref()) != g.code_challenge {
            return Err(invalid_grant("PKCE verification failed"));
        }
        let fault = st.id_token_fault;
        let id_token = self.mint_id_token(
            st,
            &g.user,
            client_id,
            Some(&g.nonce),
            Some(&g.sid),
            g.auth_time,
            fault,
        );
        let aud = json!(st.audience);
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            Some(&g.user),
            &g.user.sub,
            client_id,
            aud.clone(),
            Some(&g.scope),
            Some(&g.sid),
            ttl,
        );
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "id_token": id_token,
            "scope": g.scope,
        });
        if st.issue_refresh {
            let subject = GrantSubject::User {
                user: g.user.clone(),
                sid: Some(g.sid.clone()),
                nonce: Some(g.nonce.clone()),
                auth_time: g.auth_time,
                id_token: true,
            };
            let rt = self.new_refresh(st, None, client_id, subject, Some(&g.scope), aud);
            body["refresh_token"] = json!(rt);
        }
        Ok(body)
    }

    pub(super) fn grant_refresh(
        &self,
        form: &FormParams,
        client_id: &str,
        st: &mut State,
    ) -> Reply {
        let rt = form
            .get("refresh_token")
            .ok_or_else(|| invalid_request("missing refresh_token"))?;
        if st.refresh_all_revoked {
            return Err(invalid_grant("refresh token revoked"));
        }
        let rec = st
            .refresh
            .get(rt)
            .cloned()
            .ok_or_else(|| invalid_grant("unknown refresh token"))?;
        if st.revoked_grants.contains(&rec.grant_id) {
            return Err(invalid_grant("grant revoked"));
        }
        if rec.client_id != client_id {
            return Err(invalid_grant("refresh token of another client"));
        }
        if rec.used {
            // Like oidc-provider: reuse of a rotated refresh token revokes the whole grant.
            st.revoked_grants.insert(rec.grant_id);
            return Err(invalid_grant("refresh token already used; grant revoked"));
        }
        let ttl = st.access_ttl;
        let scope = rec.scope.as_deref();
        let mut body = match &rec.subject {
            GrantSubject::User {
                user,
                sid,
                nonce,
                auth_time,
                id_token,
            } => {
                let access = self.mint_access(
                    st,
                    Some(user),
                    &user.sub,
                    client_id,
                    rec.aud.clone(),
                    scope,
                    sid.as_deref(),
                    ttl,
                );
                let mut body =
                    json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl });
                if *id_token {
                    body["id_token"] = json!(self.mint_id_token(
                        st,
                        user,
                        client_id,
                        nonce.as_deref(),
                        sid.as_deref(),
                        *auth_time,
                        None
                    ));
                }
                body
            }
            GrantSubject::Client => {
                let access = self.mint_access(
                    st,
                    None,
                    client_id,
                    client_id,
                    rec.aud.clone(),
                    scope,
                    None,
                    ttl,
                );
                json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl })
            }
        };
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        if st.rotate_refresh {
            if let Some(r) = st.refresh.get_mut(rt) {
                r.used = true;
            }
            let new_rt = self.new_refresh(
                st,
                Some(rec.grant_id),
                client_id,
                rec.subject.clone(),
                scope,
                rec.aud.clone(),
            );
            body["refresh_token"] = json!(new_rt);
        }
        Ok(body)
    }

    pub(super) fn requested_aud(&self, form: &FormParams, st: &State) -> Value {
        let audiences = form.all("audience");
        let audiences = if audiences.is_empty() {
            form.all("resource")
        } else {
            audiences
        };
        match audiences.as_slice() {
            [] => json!(st.audience),
            [one] => json!(one),
            many => json!(many),
        }
    }

    pub(super) fn grant_client_credentials(
        &self,
        form: &FormParams,
        client_id: &str,
        st: &mut State,
    ) -> Reply {
        let aud = self.requested_aud(form, st);
        let scope = form.get("scope");
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            None,
            client_id,
            client_id,
            aud.clone(),
            scope,
            None,
            ttl,
        );
        let mut body = json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        if st.cc_refresh {
            let rt = self.new_refresh(st, None, client_id, GrantSubject::Client, scope, aud);
            body["refresh_token"] = json!(rt);
        }
        Ok(body)
    }

    pub(super) fn grant_password(
        &self,
        form: &FormParams,
        client_id: &str,
        st: &mut State,
    ) -> Reply {
        let username = form
            .get("username")
            .ok_or_else(|| invalid_request("missing username"))?;
        let password = form
            .get("password")
            .ok_or_else(|| invalid_request("missing password"))?;
        let user = match st.technical.get(username) {
            Some((user, pw)) if pw == password => user.clone(),
            _ => return Err(invalid_grant("invalid user credentials")),
        };
        let aud = self.requested_aud(form, st);
        let scope = form.get("scope");
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            Some(&user),
            &user.sub,
            client_id,
            aud.clone(),
            scope,
            None,
            ttl,
        );
        let mut body = json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        if st.issue_refresh {
            let subject = GrantSubject::User {
                user,
                sid: None,
                nonce: None,
                auth_time: now(),
                id_token: false,
            };
            let rt = self.new_refresh(st, None, client_id, subject, scope, aud);
            body["refresh_token"] = json!(rt);
        }
        Ok(body)
    }

    pub(super) fn grant_exchange(
        &self,
        form: &FormParams,
        client_id: &str,
        st: &mut State,
    ) -> Reply {
        let subject_token = form
            .get("subject_token")
            .ok_or_else(|| invalid_request("missing subject_token"))?;
        if form.get("subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
            return Err(invalid_request("unsupported subject_token_type"));
        }
        if form
            .get("requested_token_type")
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE && t != "urn:ietf:params:oauth:token-type:jwt")
        {
            return Err(invalid_request("unsupported requested_token_type"));
        }
        let subject = st
            .access_tokens
            .get(subject_token)
            .cloned()
            .filter(|t| t.exp > now() && !st.revoked_access.contains(subject_token))
            .ok_or_else(|| invalid_request("subject_token invalid or expired"))?;
        let aud = self.requested_aud(form, st);
        let scope = form.get("scope");
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            subject.user.as_ref(),
            &subject.sub,
            client_id,
            aud,
            scope,
            subject.sid.as_deref(),
            ttl,
        );
        let mut body = json!({
            "access_token": access,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": ttl,
        });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        Ok(body)
    }
}
