// The OTLP/HTTP collectors of `bench/run --telemetry` (loopback only):
//   node bench/otlp-sink.mjs answer PORT   answers every POST /v1/traces with 200 (an empty
//                                          ExportTraceServiceResponse), counting bytes and requests
//   node bench/otlp-sink.mjs silent PORT   accepts connections and never answers (a hung collector)
// Prints {"requests":N,"bytes":N} on SIGTERM (answer mode).
import http from 'node:http';
import net from 'node:net';

const [mode, port] = process.argv.slice(2);
if (mode === 'answer') {
  let requests = 0;
  let bytes = 0;
  const server = http.createServer((request, response) => {
    request.on('data', (chunk) => { bytes += chunk.length; });
    request.on('end', () => {
      requests += 1;
      response.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 });
      response.end();
    });
  });
  server.listen(Number(port), '127.0.0.1');
  process.on('SIGTERM', () => {
    console.log(JSON.stringify({ requests, bytes }));
    process.exit(0);
  });
} else if (mode === 'silent') {
  const held = [];
  net.createServer((socket) => { held.push(socket); }).listen(Number(port), '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
} else {
  console.error('usage: node bench/otlp-sink.mjs answer|silent PORT');
  process.exit(2);
}
