//! [`RequestTelemetry`]: the outermost middleware. It names the request (id, and the
//! task-local the log lines read), then after the answer sets `X-Request-Id`, writes the
//! access line and counts the request by route, method and status.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use futures_util::future::LocalBoxFuture;

use super::REQUEST_ID_HEADER;
use super::access::AccessLine;
use super::request::{CURRENT, RequestContext, RequestId};
use crate::metrics::{HttpMetrics, RouteMetrics};

/// The route label of requests no route matched.
pub const UNMATCHED_ROUTE: &str = "UNKNOWN";

/// A route's pattern relative to `server.base_path`, as resource data: the access line and
/// the metrics name the route without matching the path a second time.
#[derive(Clone, Debug)]
pub struct RouteLabel(pub String);

/// The request middleware (outermost): request id, access line, request counters.
pub struct RequestTelemetry {
    metrics: HttpMetrics,
    base_path: Rc<str>,
}

impl RequestTelemetry {
    /// Counts into `metrics`; route labels are prefixed with `base_path`.
    pub fn new(metrics: HttpMetrics, base_path: &str) -> Self {
        Self {
            metrics,
            base_path: Rc::from(base_path),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequestTelemetry
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestTelemetryService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestTelemetryService {
            service: Rc::new(service),
            routes: Rc::new(RouteCounters {
                metrics: self.metrics.clone(),
                base_path: self.base_path.clone(),
                resolved: RefCell::new(HashMap::new()),
            }),
        }))
    }
}

/// [`RequestTelemetry`] on one worker.
pub struct RequestTelemetryService<S> {
    service: Rc<S>,
    routes: Rc<RouteCounters>,
}

impl<S, B> Service<ServiceRequest> for RequestTelemetryService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let context = RequestContext {
            id: RequestId::next(),
            method: request.method().clone(),
            uri: request.uri().clone(),
        };
        let id = context.id;
        // Traces on and sampled: the request's span (continuing an incoming `traceparent`)
        // is current while the request is routed and served. Not sampled: served inside
        // `spans::unsampled`, where no span is made. Off: `Span::none()`, and no span code
        // runs.
        let span = crate::spans::request(
            method_label(request.method()),
            id.as_str(),
            request.headers(),
        );
        let untraced = crate::spans::request_untraced(&span);
        let call = CURRENT.sync_scope(context.clone(), || {
            if untraced {
                crate::spans::unsampled_scope(|| self.service.call(request))
            } else if span.is_none() {
                self.service.call(request)
            } else {
                span.in_scope(|| self.service.call(request))
            }
        });
        let routes = self.routes.clone();
        let request_span = span.clone();
        let served = async move {
            let outcome = call.await;
            let elapsed = started.elapsed();
            let mut response = match outcome {
                Ok(response) => response,
                Err(error) => {
                    tracing::warn!(%error, "request failed");
                    return Err(error);
                }
            };
            let status = response.status().as_u16();
            let request = response.request();
            let route = routes.get(
                request
                    .app_data::<RouteLabel>()
                    .map(|label| label.0.as_str()),
                request.method(),
                status,
            );
            route.observe(elapsed);
            crate::spans::finish_request(
                &request_span,
                method_label(request.method()),
                route.label(),
                status,
            );
            AccessLine {
                method: request.method().as_str(),
                path: request.path(),
                request_id: id.as_str(),
                route: route.label(),
                status,
                elapsed,
            }
            .log();
            if let Ok(value) = HeaderValue::from_str(id.as_str()) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            Ok(response)
        };
        if untraced {
            Box::pin(CURRENT.scope(context, crate::spans::unsampled(served)))
        } else if span.is_none() {
            Box::pin(CURRENT.scope(context, served))
        } else {
            Box::pin(CURRENT.scope(context, tracing::Instrument::instrument(served, span)))
        }
    }
}

/// Method label, status and the counters of one route.
type ResolvedRoute = (&'static str, u16, Rc<RouteMetrics>);

/// One worker's request counters, resolved once per route, method and status.
struct RouteCounters {
    metrics: HttpMetrics,
    base_path: Rc<str>,
    /// By route label (`""` for no route), then method and status.
    resolved: RefCell<HashMap<String, Vec<ResolvedRoute>>>,
}

/// The method as a metrics label: the standard ones by name, any other as `OTHER` (a
/// client inventing methods must not invent time series).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

impl RouteCounters {
    fn get(&self, label: Option<&str>, method: &Method, status: u16) -> Rc<RouteMetrics> {
        let name = label.unwrap_or_default();
        let method = method_label(method);
        let found = self.resolved.borrow().get(name).and_then(|known| {
            known
                .iter()
                .find(|(known_method, known_status, _)| {
                    *known_status == status && *known_method == method
                })
                .map(|(_, _, metrics)| metrics.clone())
        });
        if let Some(found) = found {
            return found;
        }
        let route = match label {
            Some(label) => format!("{}{label}", self.base_path),
            None => UNMATCHED_ROUTE.to_owned(),
        };
        let resolved = Rc::new(self.metrics.route(route, method, status));
        self.resolved
            .borrow_mut()
            .entry(name.to_owned())
            .or_default()
            .push((method, status, resolved.clone()));
        resolved
    }
}
