//! HTML pages shown to browsers (provider chooser, errors, signed out), rendered with
//! minijinja from the built-in templates, each overridable from `server.templates_dir`.

use std::path::Path;
use std::sync::Arc;

use actix_web::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use minijinja::Environment;
use serde::Serialize;

use crate::error::{ApiError, InternalError};

const BUILT_IN: [(&str, &str); 4] = [
    ("base.html", include_str!("../templates/base.html")),
    (
        "choose_provider.html",
        include_str!("../templates/choose_provider.html"),
    ),
    ("error.html", include_str!("../templates/error.html")),
    (
        "logged_out.html",
        include_str!("../templates/logged_out.html"),
    ),
];

/// The template environment (shared by all workers).
#[derive(Clone)]
pub struct Pages {
    environment: Arc<Environment<'static>>,
}

/// One entry of the provider chooser.
#[derive(Debug, Serialize)]
pub struct ProviderChoice {
    /// Provider id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `/login` URL that picks this provider.
    pub login_url: String,
}

/// Why the templates cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    /// A replacement template file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A template does not parse.
    #[error("template {name}: {source}")]
    Template {
        /// The template's name.
        name: &'static str,
        /// The parse error.
        #[source]
        source: minijinja::Error,
    },
}

impl Pages {
    /// Loads the built-in templates, replaced by same-named files in `templates_dir`.
    pub fn new(templates_dir: Option<&Path>) -> Result<Self, PagesError> {
        let mut environment = Environment::new();
        for (name, built_in) in BUILT_IN {
            let source = match templates_dir.map(|dir| dir.join(name)) {
                Some(path) if path.is_file() => {
                    std::fs::read_to_string(&path).map_err(|source| PagesError::Read {
                        path: path.display().to_string(),
                        source,
                    })?
                }
                _ => built_in.to_owned(),
            };
            environment
                .add_template_owned(name, source)
                .map_err(|source| PagesError::Template { name, source })?;
        }
        Ok(Self {
            environment: Arc::new(environment),
        })
    }

    /// The provider chooser page.
    pub fn choose_provider(&self, providers: &[ProviderChoice]) -> HttpResponse {
        self.page(
            actix_web::http::StatusCode::OK,
            "choose_provider.html",
            minijinja::context! { providers => minijinja::Value::from(minijinja::value::Serde(providers)) },
        )
    }

    /// The signed-out page.
    pub fn logged_out(&self) -> HttpResponse {
        self.page(
            actix_web::http::StatusCode::OK,
            "logged_out.html",
            minijinja::context! {},
        )
    }

    /// `error` as an HTML page for browsers (whose `Accept` names `text/html`), else as
    /// the JSON error.
    pub fn error(&self, request: &HttpRequest, error: &ApiError) -> HttpResponse {
        if !wants_html(request) {
            return error.error_response();
        }
        error.log_cause();
        self.page(
            error.status_code(),
            "error.html",
            minijinja::context! { code => error.code(), message => error.to_string() },
        )
    }

    fn page(
        &self,
        status: actix_web::http::StatusCode,
        name: &str,
        context: minijinja::Value,
    ) -> HttpResponse {
        let rendered = self
            .environment
            .get_template(name)
            .and_then(|template| template.render(context));
        match rendered {
            Ok(html) => HttpResponse::build(status)
                .insert_header((
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ))
                .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .body(html),
            Err(error) => ApiError::Internal(InternalError::Template {
                name: name.to_owned(),
                source: error,
            })
            .error_response(),
        }
    }
}

/// Whether the request's `Accept` header names `text/html`, as browsers' do.
pub fn wants_html(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/html"))
}
