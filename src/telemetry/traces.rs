//! Trace export (SPEC 7, "Traces"; `[telemetry]`): the spans of [`crate::spans`] leave
//! through `tracing-opentelemetry` and the OpenTelemetry SDK's batch span processor to
//! `opentelemetry-otlp`'s OTLP/HTTP (protobuf) exporter at `<otlp_endpoint>/v1/traces`.
//!
//! - Sampling: a sampled incoming `traceparent` is always followed, an unsampled one
//!   never, and new traces are recorded at `sample_ratio`. `crate::spans` decides it
//!   where a trace starts, before any span is built (an unsampled request makes none);
//!   the SDK's sampler, `ParentBased(AlwaysOn)`, records what it is handed.
//! - Nothing waits for the collector: a request only hands its ended spans to the batch
//!   processor's bounded queue; the export runs on the processor's own thread.
//! - Drops are counted in `identity_trace_spans_dropped_total`. The SDK counts its own
//!   queue overflows privately (it only logs them), so [`Admission`] sits in front of
//!   it: it keeps the number of spans handed over and not yet taken by an export, and
//!   turns away (and counts) a span that would exceed the queue's capacity, so the SDK's
//!   queue itself never overflows. [`Counted`] wraps the exporter: a batch taken leaves
//!   the count, and a batch the collector refused or never answered is counted too.
//! - The exporter posts through our reqwest client ([`ExportClient`]: the roots of
//!   `[tls]`, the one rustls provider) on a small runtime of its own, since the batch
//!   processor's thread runs no async runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter, SpanProcessor,
};
use prometheus::IntCounter;

use crate::config::TelemetryConfig;

/// Spans waiting for export at most; more are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 2048;
/// Spans per export request at most.
const BATCH_SIZE: usize = 512;
/// A batch leaves at least this often.
const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// One export request may take this long (a silent collector costs the export thread
/// this, never a request).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Stopping waits this long at most for the last export (SIGTERM must exit within 10 s).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The running trace export; [`Traces::shutdown`] (or dropping it) sends what is queued.
pub struct Traces {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
    sample_ratio: f64,
}

impl Traces {
    /// Builds the export of `config` (whose `otlp_endpoint` is set) posting with `http`,
    /// counting drops in `dropped`.
    pub fn start(
        config: &TelemetryConfig,
        endpoint: &url::Url,
        http: reqwest::Client,
        dropped: IntCounter,
    ) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the trace exporter: {error}"))?;
        let client = ExportClient {
            http,
            runtime: runtime.handle().clone(),
        };
        let url = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|error| format!("telemetry.otlp_endpoint: {error}"))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let exporter = Counted {
            inner: exporter,
            queued: queued.clone(),
            dropped: dropped.clone(),
        };
        let batches = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(QUEUE_CAPACITY)
                    .with_max_export_batch_size(BATCH_SIZE)
                    .with_scheduled_delay(EXPORT_DELAY)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Admission {
                inner: batches,
                queued,
                capacity: QUEUE_CAPACITY,
                dropped,
            })
            // `spans` decides where a trace starts (the draw at `sample_ratio`, or the
            // incoming flag); a span it makes is recorded, and its children with it.
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        Ok(Self {
            provider,
            runtime: Some(runtime),
            sample_ratio: config.sample_ratio,
        })
    }

    /// The share of new traces recorded (`sample_ratio`); `spans` draws it.
    pub fn sample_ratio(&self) -> f64 {
        self.sample_ratio
    }

    /// The tracer the `tracing` layer records into.
    pub(super) fn tracer(&self) -> SdkTracer {
        self.provider.tracer("identity-service")
    }

    /// Exports what is still queued (waiting at most [`SHUTDOWN_TIMEOUT`]) and stops.
    pub fn shutdown(&mut self) {
        let _ = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Admits an ended span into the batch processor's queue only while it has room; counts
/// the others as dropped. `queued` is the number handed over and not yet taken by an
/// export, which is at least what the SDK's queue holds, so its queue never overflows.
#[derive(Debug)]
struct Admission<P> {
    inner: P,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: IntCounter,
}

impl<P: SpanProcessor> SpanProcessor for Admission<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.dropped.inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, telling [`Admission`] which spans left the queue and counting the spans
/// of a batch that could not be delivered.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    dropped: IntCounter,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let size = batch.len();
        self.queued.fetch_sub(size, Ordering::AcqRel);
        let dropped = self.dropped.clone();
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            if result.is_err() {
                dropped.inc_by(size as u64);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter's HTTP client: our reqwest client, run on the exporter's runtime
/// (the batch processor polls the export from a plain thread).
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut request = reqwest::Request::try_from(request)?;
        *request.timeout_mut() = Some(EXPORT_TIMEOUT);
        let http = self.http.clone();
        let answer = self.runtime.spawn(async move {
            let response = http.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(answer.body(body)?)
        });
        answer.await?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Mutex;

    use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkError;

    use super::*;

    /// A processor that keeps every span it is given (a queue nobody drains).
    #[derive(Debug, Default, Clone)]
    struct Hold(Arc<Mutex<Vec<SpanData>>>);

    impl SpanProcessor for Hold {
        fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
        fn on_end(&self, span: SpanData) {
            self.0.lock().unwrap().push(span);
        }
        fn force_flush(&self) -> OTelSdkResult {
            Ok(())
        }
        fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    /// An exporter whose collector refuses everything.
    #[derive(Debug)]
    struct Refused;

    impl SpanExporter for Refused {
        async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
            Err(OTelSdkError::InternalFailure("refused".into()))
        }
    }

    #[test]
    fn spans_beyond_the_queue_capacity_are_dropped_and_counted_and_a_refused_batch_too() {
        let held = Hold::default();
        let queued = Arc::new(AtomicUsize::new(0));
        let dropped = IntCounter::new("dropped", "dropped").unwrap();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Admission {
                inner: held.clone(),
                queued: queued.clone(),
                capacity: 3,
                dropped: dropped.clone(),
            })
            .build();
        let tracer = provider.tracer("test");
        for _ in 0..5 {
            tracer.in_span("request", |_| {});
        }
        assert_eq!(
            held.0.lock().unwrap().len(),
            3,
            "the queue got only what fits"
        );
        assert_eq!(dropped.get(), 2);
        assert_eq!(queued.load(Ordering::Acquire), 3);

        // The export takes the queued spans (room again) and, refused, counts them.
        let exporter = Counted {
            inner: Refused,
            queued: queued.clone(),
            dropped: dropped.clone(),
        };
        let batch = std::mem::take(&mut *held.0.lock().unwrap());
        assert!(
            futures_util::FutureExt::now_or_never(exporter.export(batch))
                .expect("the stub answers at once")
                .is_err()
        );
        assert_eq!(queued.load(Ordering::Acquire), 0);
        assert_eq!(dropped.get(), 5);
        tracer.in_span("request", |_| {});
        assert_eq!(
            held.0.lock().unwrap().len(),
            1,
            "room again after the export"
        );
        assert_eq!(dropped.get(), 5);
    }
}
